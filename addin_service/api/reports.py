"""``/api/v1/reports``: file a report, read your own report back.

Two things here lean on how ``ReportFiler.file`` finds a replay (same reporter, same canonical item,
or a stored Idempotency-Key): the rate limit charges only requests that may reach Exchange, and
"also save my other messages" is filed under a lease so that a retry answers the first body.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, json, request
from marshmallow import ValidationError

from addin_service.api.problems import UnsupportedMediaType
from addin_service.api.schemas import ReportRequestSchema, ReportResponseSchema
from addin_service.auth.caller import Caller
from addin_service.bootstrap import Container
from addin_service.cases.service import ReportCommand, item_key_of
from addin_service.db.reports import Report
from addin_service.errors import InvalidRequest, ReportInProgress, ReportNotFound, ServiceError
from addin_service.ids import is_report_id

bp = Blueprint("reports", __name__, url_prefix="/api/v1")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_JSON = "application/json"
_UTF8 = {"utf-8", "utf8"}
# How long the request that files related messages holds their lease: longer than filing 50 of them
# takes, so a retry never files them alongside it; a process that dies frees them after this long.
RELATED_LEASE_SECONDS = 600.0
# How long a retry waits for that request to finish before answering 503 (Retry-After) instead.
RELATED_WAIT_SECONDS = 30.0
RELATED_ATTEMPTS = 3
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
    _require_json_body()
    data = request.get_json(silent=True)
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
        item = item_key_of(caller, command)
        first = c.filer.find_existing(caller, command, key)  # 422 for a reused key, nothing charged
        if first is None:
            # Only a request that may reach Exchange is charged: a replay of a filed report is
            # answered from the database and must not be refused (DESIGN: "returns the first report").
            c.rate_limiter.hit(caller.upn)
        lease = _RelatedLease(c, caller.upn, item)
        try:
            if command.include_related and (first is None or _related_pending(first)):
                lease.acquire()  # before the report can be seen: a retry then waits for its related messages
            filed = c.filer.file(caller, command, key)
            body = filed.body
            if filed.created and command.include_related:  # the lease is held: first was None
                body = _file_related(c, caller, command, body)
            elif not filed.created and "related" not in body:
                body = _finish_replay(c, caller, body, first, lease)
        finally:
            lease.release()
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


def _related_pending(report: Report) -> bool:
    """The report asked for its sender's other messages and its stored answer does not say yet."""
    return report.include_related and "related" not in json.loads(report.response_json)


def _file_related(c: Container, caller: Caller, command: ReportCommand, body: dict[str, Any]) -> dict[str, Any]:
    """File the other messages from the sender and store the answer that says so, so that every
    replay is answered with this body. The caller holds the related lease."""
    body = {**body, "related": c.related.file_related(caller, command, body).to_dict()}
    c.repository.update_response(body["report_id"], json.dumps(body, sort_keys=True))
    return body


def _finish_replay(
    c: Container, caller: Caller, body: dict[str, Any], first: Report | None, lease: _RelatedLease
) -> dict[str, Any]:
    """A replayed body without ``related``: as it is, unless the first request asked for related
    messages. Then wait for the request filing them (it holds the lease) and answer the body it
    stored; if it died before storing one, file them under the lease and answer that.

    :raises ReportInProgress: the related messages are still being filed (503, Retry-After).
    :raises DatabaseUnavailable: the database cannot be reached.
    """
    report = first if first is not None and first.id == body["report_id"] else None
    if report is None:
        report = c.repository.get_report(body["report_id"])
    if report is None or not report.include_related:
        return body
    lease.acquire()
    report = c.repository.get_report(body["report_id"])  # again, now that nobody else is filing them
    if report is None:  # pragma: no cover - reports are never deleted
        return body
    stored: dict[str, Any] = json.loads(report.response_json)
    if "related" in stored:
        return stored
    command = ReportCommand(
        item_id=report.item_id,  # canonical: the EWS form
        id_format="ews",
        mailbox=report.mailbox,
        category=report.category,
        note="",
        feels_unsafe=report.feels_unsafe,
        include_related=True,
    )
    return _file_related(c, caller, command, stored)


class _RelatedLease:
    """Who may file a report's related messages: a lease in the repository's item claims, under a
    key no Exchange item has. The request that files them holds it from before its report can be
    seen until their outcome is stored; a retry waits for it, so it answers that stored body.
    """

    def __init__(self, c: Container, reporter: str, item: str) -> None:
        self._repo = c.repository
        self._reporter = reporter
        self._key = hashlib.sha256(f"related\0{item}".encode()).hexdigest()
        self._token: str | None = None

    def acquire(self) -> None:
        """Take the lease, waiting while another request holds it (until released or expired).

        :raises ReportInProgress: still held by another request after the wait (503, Retry-After).
        :raises DatabaseUnavailable: the database cannot be reached.
        """
        for attempt in range(RELATED_ATTEMPTS):
            if self._token is None:
                self._token = self._repo.claim(self._reporter, self._key, RELATED_LEASE_SECONDS)
            if self._token is not None:
                return
            if attempt + 1 < RELATED_ATTEMPTS:
                # Returns once the holder released the lease or it expired; raises at the timeout.
                self._repo.wait_for_report(self._reporter, self._key, timeout=RELATED_WAIT_SECONDS)
        raise ReportInProgress("This report is being filed right now. Try again in a moment.", 2)

    def release(self) -> None:
        """Give the lease up; nothing if not held. :raises DatabaseUnavailable: (it then expires)."""
        if self._token is not None:
            token, self._token = self._token, None
            self._repo.release(self._reporter, self._key, token)


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
    return _json_response(_RESPONSE_SCHEMA.dump(json.loads(report.response_json)), 200)


def _flatten(messages: object) -> dict[str, list[str]]:
    """marshmallow's nested messages → {field: [messages]}, the one error shape."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for field, value in messages.items():
            if isinstance(value, list):
                out[str(field)] = [str(v) for v in value]
            elif isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{field}.{sub}"] = msgs
            else:
                out[str(field)] = [str(value)]
    elif isinstance(messages, list):
        out["_body"] = [str(m) for m in messages]
    return out
