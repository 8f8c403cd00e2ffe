"""Liveness, readiness and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, json, request

from addin_service.api.problems import problem
from addin_service.bootstrap import Container
from addin_service.errors import ServiceError
from addin_service.observability.metrics_access import may_read_metrics

bp = Blueprint("health", __name__)


def _container() -> Container:
    return current_app.extensions["addin"]  # type: ignore[no-any-return]


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up. No dependency is touched."""
    return Response(json.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """Database, evidence store and Exchange are all reachable; 503 names what is not."""
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
        except ServiceError as exc:
            checks[name] = exc.detail
            retry_after = max(retry_after, getattr(exc, "retry_after", 5))
    if all(v == "ok" for v in checks.values()):
        return Response(json.dumps({"status": "ok", "checks": checks}), mimetype="application/json")
    failing = ", ".join(name for name, v in checks.items() if v != "ok")
    return problem(
        503,
        "Not ready",
        f"Not ready: {failing} unavailable.",
        "not-ready",
        retry_after=retry_after or 5,
        extra={"status_text": "unavailable", "checks": checks},
    )


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
