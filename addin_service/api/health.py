"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, json, request

from addin_service.api.problems import problem
from addin_service.bootstrap import Container
from addin_service.errors import ServiceError
from addin_service.observability.metrics_access import may_read_metrics

bp = Blueprint("health", __name__)
log = logging.getLogger("addin_service.api")
NOT_READY_DETAIL = "Some dependencies are unavailable; the service log says why."
DEFAULT_RETRY_AFTER = 5


def _container() -> Container:
    return current_app.extensions["addin"]  # type: ignore[no-any-return]


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up. No dependency is touched."""
    return Response(json.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """Database, evidence store and Exchange are all reachable; 503 names which are not.

    Anyone may ask, so the answer holds only check names and ok/failed: what failed and why (a
    path, a host, a variable) goes to the log, at warning level.
    """
    c = _container()
    checks: dict[str, str] = {}
    retry_after = 0
    for name, probe in (
        ("database", c.database.check),
        ("evidence", c.evidence.check),
        ("exchange", c.mailbox.check),
    ):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the log says which and why
            checks[name] = "failed"
            retry_after = max(retry_after, getattr(exc, "retry_after", DEFAULT_RETRY_AFTER))
            if isinstance(exc, ServiceError):
                kind, detail, trace = exc.type_slug, exc.detail, False
            else:  # not translated by its adapter: the trace says where it came from
                kind, detail, trace = type(exc).__name__, str(exc), True
            log.warning(
                "readiness check failed",
                exc_info=trace,
                extra={"event": "readyz.failed", "check": name, "kind": kind, "detail": detail},
            )
    if all(v == "ok" for v in checks.values()):
        return _json({"status": "ok", "checks": checks}, 200)
    response = _json({"status": "unavailable", "detail": NOT_READY_DETAIL, "checks": checks}, 503)
    response.headers["Retry-After"] = str(retry_after or DEFAULT_RETRY_AFTER)
    return response


def _json(body: object, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics, for the addresses in ADDIN_METRICS_ALLOW or ADDIN_METRICS_TOKEN only."""
    c = _container()
    allowed = may_read_metrics(
        c.settings.metrics_allow,
        c.settings.metrics_token,
        request.remote_addr,
        request.headers.keys(),
        request.headers.get("Authorization"),
    )
    if not allowed:
        return problem(
            403,
            "Forbidden",
            "Metrics are served only to the addresses in ADDIN_METRICS_ALLOW (not through a proxy) "
            "or with the bearer token in ADDIN_METRICS_TOKEN.",
            "metrics-forbidden",
        )
    return Response(c.metrics.render(), mimetype="text/plain; version=0.0.4")
