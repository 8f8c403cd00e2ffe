"""``/openapi.json``, generated from the same marshmallow schemas that validate requests."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, json

from addin_service.api.schemas import (
    HealthSchema,
    ProblemSchema,
    ReadinessSchema,
    ReportRequestSchema,
    ReportResponseSchema,
)
from addin_service.web.pane_config import PaneConfigSchema

bp = Blueprint("openapi", __name__)
PROBLEM = "application/problem+json"


RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
# OpenAPI links: a filed report's report_id is what GET /api/v1/reports/{report_id} takes (clients
# and stateful API testers follow it from the answer instead of guessing ids).
_READ_IT_BACK = {
    "GetReport": {
        "operationId": "getReport",
        "parameters": {"report_id": "$response.body#/report_id"},
        "description": "Read the report back (only its reporter can)",
    }
}


def _problem(
    description: str, *, retry_after: bool = False, auth: bool = False, accept_encoding: bool = False
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {PROBLEM: {"schema": "Problem"}}}
    headers: dict[str, Any] = {}
    if retry_after:
        headers["Retry-After"] = RETRY_AFTER
    if accept_encoding:
        headers["Accept-Encoding"] = {
            "description": "identity: the only content coding accepted (sent when Content-Encoding was the problem)",
            "schema": {"type": "string"},
        }
    if auth:
        headers["WWW-Authenticate"] = {"description": "Bearer challenge", "schema": {"type": "string"}}
    if headers:
        response["headers"] = headers
    return response


def build_spec(server_url: str) -> dict[str, Any]:
    spec = APISpec(
        title="Report Harassment for Outlook",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Files reported messages from Exchange as sealed evidence."},
        servers=[{"url": server_url}],
    )
    spec.components.security_scheme(
        "entra",
        {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "Entra ID access token"},
    )
    spec.components.schema("ReportRequest", schema=ReportRequestSchema)
    spec.components.schema("ReportResponse", schema=ReportResponseSchema)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("Health", schema=HealthSchema)
    spec.components.schema("Readiness", schema=ReadinessSchema)
    spec.components.schema("PaneConfig", schema=PaneConfigSchema)
    common = {
        "401": _problem("Missing, expired or invalid token", auth=True),
        "503": _problem("Exchange, the database or the evidence store is unavailable", retry_after=True),
    }
    spec.path(
        path="/api/v1/reports",
        operations={
            "post": {
                "summary": "Report a message as harassment",
                "operationId": "createReport",
                "security": [{"entra": []}],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "ReportRequest"}},
                },
                "responses": {
                    "201": {
                        "description": "Filed",
                        "content": {"application/json": {"schema": "ReportResponse"}},
                        "links": _READ_IT_BACK,
                    },
                    "200": {
                        "description": "Already filed: the first answer, replayed",
                        "content": {"application/json": {"schema": "ReportResponse"}},
                        "links": _READ_IT_BACK,
                    },
                    "400": _problem("Malformed or invalid request; errors lists each field"),
                    "403": _problem("Not your mailbox"),
                    "404": _problem("No such message in Exchange"),
                    "413": _problem("Message or request too large"),
                    "415": _problem(
                        "Content-Type is not application/json (charset, if given, utf-8), or the body has a "
                        "Content-Encoding (gzip, ...) this service does not decode; send it uncompressed",
                        accept_encoding=True,
                    ),
                    "422": _problem("Idempotency-Key reused for a different request"),
                    "429": _problem("Too many reports from this caller", retry_after=True),
                    **common,
                },
            }
        },
    )
    spec.path(
        path="/api/v1/reports/{report_id}",
        operations={
            "get": {
                "summary": "Read one of your own reports",
                "operationId": "getReport",
                "security": [{"entra": []}],
                "parameters": [{"name": "report_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "The report",
                        "content": {"application/json": {"schema": "ReportResponse"}},
                    },
                    "404": _problem("No such report of yours"),
                    **common,
                },
            }
        },
    )
    spec.path(
        path="/api/v1/pane-config",
        operations={
            "get": {
                "summary": "What the task pane needs: sign-in, categories, help",
                "operationId": "paneConfig",
                "responses": {
                    "200": {
                        "description": "Public settings",
                        "content": {"application/json": {"schema": "PaneConfig"}},
                    }
                },
            }
        },
    )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": {"200": {"description": "Up", "content": {"application/json": {"schema": "Health"}}}},
            }
        },
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "summary": "Readiness",
                "operationId": "readyz",
                "responses": {
                    "200": {"description": "Ready", "content": {"application/json": {"schema": "Readiness"}}},
                    "503": {
                        "description": "Not ready: checks says which dependency failed (the log says why)",
                        "content": {"application/json": {"schema": "Readiness"}},
                        "headers": {"Retry-After": RETRY_AFTER},
                    },
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "summary": "Prometheus metrics (ADDIN_METRICS_ALLOW addresses, or ADDIN_METRICS_TOKEN)",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "403": _problem("Not an allowed address, through a proxy, and no valid metrics token"),
                },
            }
        },
    )
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Response:
    from flask import current_app

    settings = current_app.extensions["addin"].settings
    return Response(json.dumps(build_spec(settings.public_url)), mimetype="application/json")
