"""``/api/v1/reports``: file a report, read your own report back."""

from __future__ import annotations

import re
import time

from flask import Blueprint, Response, current_app, g, json, request
from marshmallow import ValidationError

from addin_service.api.problems import UnsupportedMediaType, shown_text
from addin_service.api.schemas import ReportRequestSchema, ReportResponseSchema
from addin_service.bootstrap import Container
from addin_service.cases.service import ReportCommand
from addin_service.errors import InvalidRequest, ReportNotFound, ServiceError
from addin_service.ids import is_report_id

bp = Blueprint("reports", __name__, url_prefix="/api/v1")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_JSON = "application/json"
_UTF8 = {"utf-8", "utf8"}
_MAX_SHOWN_NAME = 64
# Built once: a schema holds no per-call state, and building one (with its nested schemas) costs
# more than loading a request with it.
_REQUEST_SCHEMA = ReportRequestSchema()
_RESPONSE_SCHEMA = ReportResponseSchema()


def container() -> Container:
    return current_app.extensions["addin"]  # type: ignore[no-any-return]


def _json_response(body: object, status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidRequest(
            "The Idempotency-Key header must be 1 to 200 visible ASCII characters.",
            {"Idempotency-Key": ["1 to 200 visible ASCII characters, e.g. a UUID."]},
        )
    return value


def _require_json_body() -> None:
    """415 unless the body is plain JSON: ``application/json`` (a charset, if any, UTF-8, the only
    one JSON has) with no content coding, since the service decodes none.

    :raises UnsupportedMediaType: another media type, or a Content-Encoding other than identity.
    """
    codings = [c.strip().lower() for c in request.headers.get("Content-Encoding", "").split(",") if c.strip()]
    if any(coding != "identity" for coding in codings):
        raise UnsupportedMediaType(
            "This service does not decode Content-Encoding; send the JSON body uncompressed.",
            {"Accept-Encoding": "identity"},
        )
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != _JSON or charset not in _UTF8:
        raise UnsupportedMediaType("Send the report as a JSON object with Content-Type: application/json.")


def _request_json() -> dict[str, object]:
    """The body as a JSON object: UTF-8 only (an initial byte order mark is ignored), since JSON
    exchanged between systems is UTF-8 and the charset said so; any nesting the parser cannot
    follow is malformed, not an error of the service."""
    _require_json_body()
    try:
        data = json.loads(request.get_data(cache=True).decode("utf-8").removeprefix("\ufeff"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", {"_body": ["Malformed JSON or not an object."]})
    return data


@bp.post("/reports")
def create_report() -> Response:
    """File the message the caller is looking at as evidence."""
    c = container()
    started = time.perf_counter()
    outcome = "error"
    try:
        caller = c.authenticate(request.headers.get("Authorization"))
        g.caller = caller.upn
        key = _idempotency_key()
        data = _request_json()
        try:
            loaded = _REQUEST_SCHEMA.load(data)
        except ValidationError as exc:
            raise InvalidRequest("Some fields are missing or invalid.", _flatten(exc.messages)) from None
        command = ReportCommand(**loaded)
        filed = c.submissions.submit(caller, command, key, charge=lambda: c.rate_limiter.hit(caller.upn))
        body = filed.body
        outcome = "filed" if filed.created else "replayed"
        if filed.created:
            c.metrics.report_seconds.observe(time.perf_counter() - started)
            c.metrics.report_bytes.observe(body["size"])
        return _json_response(_RESPONSE_SCHEMA.dump(body), 201 if filed.created else 200)
    except ServiceError as exc:
        outcome = exc.type_slug
        raise
    finally:
        c.metrics.reports.labels(outcome=outcome).inc()


@bp.get("/reports/<report_id>")
def get_report(report_id: str) -> Response:
    """The caller's own report; anyone else's is indistinguishable from one that does not exist."""
    c = container()
    caller = c.authenticate(request.headers.get("Authorization"))
    if not is_report_id(report_id):
        raise ReportNotFound("There is no report with that id.")
    report = c.repository.get_report(report_id)
    if report is None or report.reporter != caller.upn:
        raise ReportNotFound("There is no report with that id.")
    if report.reporter_oid is not None and report.reporter_oid != caller.object_id:
        # The same sign-in name, given to someone else since (Entra ID lets names be reused).
        raise ReportNotFound("There is no report with that id.")
    return _json_response(_RESPONSE_SCHEMA.dump(json.loads(report.response_json)), 200)


def _flatten(messages: object) -> dict[str, list[str]]:
    """marshmallow's nested messages → {field: [messages]}, the one error shape. An unknown member's
    name is the caller's own text: it comes back shortened and as Unicode text, like every string
    this service sends."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for field, value in messages.items():
            name = shown_text(str(field), _MAX_SHOWN_NAME)
            if isinstance(value, list):
                out[name] = [str(v) for v in value]
            elif isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{name}.{sub}"] = msgs
            else:
                out[name] = [str(value)]
    elif isinstance(messages, list):
        out["_body"] = [str(m) for m in messages]
    return out
