"""``addin-service demo``: the whole flow on one machine, without Microsoft 365.

Starts a demo Exchange seeded with the sample messages, the Entra ID double (discovery, JWKS,
token endpoint) as the demo sign-in, and the real service wired to both exactly as it would be in
production, with SQLite and a local evidence folder. Two kinds of Exchange:

* ``ews`` (the default): the EWS server double (real EWS SOAP over HTTP on loopback), reached by
  the real ``EwsMailbox`` (exchangelib) with a service account, as Exchange Server is.
* ``graph``: the Microsoft Graph double, reached as Exchange Online is: the real ``GraphMailbox``
  exchanges the reporter's sign-in for a Graph token with msal's on-behalf-of flow at the Entra
  double, the directory (``/manager``) and the notifications (``sendMail``) use client-credentials
  tokens limited to the sending mailbox. msal accepts only ``https://`` authorities, so both doubles
  serve TLS with throw-away CAs, trusted through ``REQUESTS_CA_BUNDLE`` for as long as the demo runs
  (:class:`DemoCaTrust`). The browser-facing side stays on plain http on loopback.
"""

from __future__ import annotations

import email.policy
import html
import logging
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from flask import Flask

from addin_service.cli_support import CommandFailed
from addin_service.demo.ews_seed import DEMO_NOTIFY_FROM, DEMO_SUPERVISOR, DEMO_USER, sample_messages, seed_demo
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.graph_server import GraphMessage, GraphServer, jwt_verifier
from addin_service.demo.graph_server import seed_demo as seed_graph_demo
from addin_service.demo.oidc import OidcIssuer
from addin_service.demo.tls import make_throwaway_tls
from addin_service.demo.web import DemoMail, DemoMessage
from addin_service.settings import Settings

log = logging.getLogger("addin_service.demo")
PREVIEW_CHARS = 160
EXCHANGES = ("ews", "graph")
CA_BUNDLE_VARIABLE = "REQUESTS_CA_BUNDLE"

# What the add-in's registration is granted in the Graph demo, on the Graph double's resource.
# Delegated (on behalf of the reporter): read their own mail, and shared mail they may read.
GRAPH_DELEGATED_SCOPES = ("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All")
# Application: the directory, and sending; the access policy below keeps mail to the sending mailbox.
GRAPH_APP_ROLES = ("Mail.Read", "Mail.Send", "User.Read.All")


@dataclass
class DemoBackend:
    """What the demo pages read: the demo mailbox's messages and tokens for demo users."""

    issuer: OidcIssuer
    items: list[DemoMessage]
    ews: EwsServer | None = None
    graph: GraphServer | None = None
    notify_from: str = ""
    user: str = DEMO_USER
    users: frozenset[str] = field(default_factory=lambda: frozenset({DEMO_USER, DEMO_SUPERVISOR}))

    def messages(self) -> list[DemoMessage]:
        return sorted(self.items, key=lambda m: m.received_at, reverse=True)

    def token_for(self, upn: str) -> str:
        if upn.lower() not in self.users:
            raise KeyError(upn)
        return self.issuer.demo_token(upn.lower())

    def sent_mail(self) -> list[DemoMail]:
        if not self.notify_from:
            return []
        if self.graph is not None:
            return [_graph_mail(sent) for sent in self.graph.sent_items(self.notify_from)]
        if self.ews is None:
            return []
        return [
            DemoMail(
                to=sent.to,
                subject=sent.subject,
                sent_at=sent.sent_at,
                html=sent.body if sent.body_type == "HTML" else f"<pre>{html.escape(sent.body)}</pre>",
                attachments=tuple(attachment.name for attachment in sent.attachments),
            )
            for sent in self.ews.sent_items(self.notify_from)
        ]


def _graph_mail(sent: GraphMessage) -> DemoMail:
    """A message in the Graph double's Sent Items, as its recipient would read it."""
    body = sent.body or {}
    content = str(body.get("content") or "")
    is_html = str(body.get("contentType", "")).lower() == "html"
    return DemoMail(
        to=tuple(str(r.get("emailAddress", {}).get("address", "")) for r in sent.to),
        subject=sent.subject or "",
        sent_at=sent.received,
        html=content if is_html else f"<pre>{html.escape(content)}</pre>",
        attachments=tuple(str(a.get("name", "")) for a in sent.attachments),
    )


class DemoCaTrust:
    """``REQUESTS_CA_BUNDLE`` pointing at a bundle of only the demo's throw-away CAs, until closed.

    requests, and therefore msal, the token validator and the Graph adapters, read it; nothing in
    the demo service talks to anything but the doubles on loopback, so no other CA is needed, and
    none is trusted. :meth:`close` puts back the variable as it was and deletes the bundle.
    """

    def __init__(self, directory: Path, *ca_files: Path) -> None:
        self.directory = directory
        self.bundle_path = directory / "demo-ca-bundle.pem"
        self.bundle_path.write_bytes(b"".join(path.read_bytes() for path in ca_files))
        self._previous = os.environ.get(CA_BUNDLE_VARIABLE)
        os.environ[CA_BUNDLE_VARIABLE] = str(self.bundle_path)
        self._closed = False

    def close(self) -> None:
        """Restore the variable (unless someone else changed it since) and delete the bundle."""
        if self._closed:
            return
        self._closed = True
        if os.environ.get(CA_BUNDLE_VARIABLE) == str(self.bundle_path):
            if self._previous is None:
                del os.environ[CA_BUNDLE_VARIABLE]
            else:
                os.environ[CA_BUNDLE_VARIABLE] = self._previous
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class DemoHandle:
    """A running demo: the doubles, the settings and the app (not yet served).

    ``ews`` is set in the EWS demo; ``graph`` and ``ca_trust`` in the Graph demo.
    """

    issuer: OidcIssuer
    settings: Settings
    app: Flask
    item_ids: dict[str, str]
    ews: EwsServer | None = None
    graph: GraphServer | None = None
    ca_trust: DemoCaTrust | None = None

    def stop(self) -> None:
        container = self.app.extensions["addin"]
        container.close()
        _stop_doubles(self.issuer, self.ews, self.graph, self.ca_trust)


def _stop_doubles(
    issuer: OidcIssuer | None, ews: EwsServer | None, graph: GraphServer | None, ca_trust: DemoCaTrust | None
) -> None:
    for double in (ews, graph, issuer):
        if double is not None:
            double.stop()
    if ca_trust is not None:
        ca_trust.close()


# What wires the service to the doubles and the demo pages: the demo sets these, whatever the
# environment says (a real Exchange URL or tenant would take the demo somewhere it cannot follow).
DEMO_OWNED = frozenset(
    {
        "ADDIN_DEMO",
        "ADDIN_EXCHANGE",
        "ADDIN_TENANT_ID",
        "ADDIN_CLIENT_ID",
        "ADDIN_CLIENT_SECRET",
        "ADDIN_CLIENT_CERTIFICATE",
        "ADDIN_CLIENT_CERTIFICATE_PASSWORD",
        "ADDIN_AUTHORITY",
        "ADDIN_AUDIENCE",
        "ADDIN_PUBLIC_URL",
        "ADDIN_NOTIFY_FROM",
        "ADDIN_NOTIFY_TRANSPORT",
        "ADDIN_SMTP_URL",
        "ADDIN_GRAPH_URL",
        "ADDIN_GRAPH_AUTH",
    }
)
DEMO_OWNED_PREFIXES = ("ADDIN_EWS_",)


def demo_settings(
    data_dir: Path,
    exchange: EwsServer | GraphServer,
    issuer: OidcIssuer,
    public_url: str,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The demo service's settings, for the EWS or the Graph double given.

    ``environ``'s other ``ADDIN_*`` variables (rate limit, worker, size limit, mailboxes, contacts,
    database, evidence folder ...) apply on top, validated as for ``run``; the ones in
    :data:`DEMO_OWNED` are the demo's and are ignored with a warning.

    :raises ConfigError: a variable from ``environ`` is invalid, naming it.
    """
    env = {
        "ADDIN_DEMO": "true",
        "ADDIN_DATABASE_URL": f"sqlite:///{data_dir / 'addin.db'}",
        "ADDIN_EVIDENCE_URL": f"file://{data_dir / 'evidence'}",
        "ADDIN_TENANT_ID": issuer.tenant_id,
        "ADDIN_CLIENT_ID": issuer.client_id,
        "ADDIN_AUTHORITY": issuer.authority,
        "ADDIN_PUBLIC_URL": public_url,
        "ADDIN_ACCEPTED_DOMAINS": "contoso.com",
        "ADDIN_SECURITY_MAILBOX": "security@contoso.com",
        "ADDIN_FALLBACK_MAILBOX": "hr-desk@contoso.com",
        "ADDIN_INTERNAL_AFFAIRS_MAILBOX": "internal-affairs@contoso.com",
        "ADDIN_INVESTIGATIONS_MAILBOX": "investigations@contoso.com",
        "ADDIN_NOTIFY_FROM": DEMO_NOTIFY_FROM,
        "ADDIN_EAP_PHONE": "+1 555 0100 (demo)",
        "ADDIN_EAP_URL": "https://eap.contoso.com",
        "ADDIN_SUPPORT_PHONE": "+1 555 0199 (demo, 24/7)",
        "ADDIN_INCIDENT_RESPONSE_PHONE": "+1 555 0142 (demo)",
        "ADDIN_OFFICE_JS_URL": "https://appsforoffice.microsoft.com/lib/1/hosted/office.js",
    }
    if isinstance(exchange, GraphServer):
        env.update(
            {
                "ADDIN_EXCHANGE": "graph",
                "ADDIN_GRAPH_URL": exchange.graph_url,
                "ADDIN_GRAPH_AUTH": "obo",
                "ADDIN_CLIENT_SECRET": issuer.client_secret,
                "ADDIN_NOTIFY_TRANSPORT": "graph",
            }
        )
    else:
        env.update(
            {
                "ADDIN_EXCHANGE": "ews",
                "ADDIN_EWS_URL": exchange.url,
                "ADDIN_EWS_AUTH": "basic",
                "ADDIN_EWS_USERNAME": exchange.username,
                "ADDIN_EWS_PASSWORD": exchange.password,
                "ADDIN_EWS_VERSION": "Exchange2016",
            }
        )
    ignored = []
    for name, value in (environ or {}).items():
        if not name.startswith("ADDIN_"):
            continue
        if name in DEMO_OWNED or name.startswith(DEMO_OWNED_PREFIXES):
            ignored.append(name)
        else:
            env[name] = value
    if ignored:
        log.warning(
            "the demo wires itself to its doubles; ignored: %s (use `addin-service run` to set them)",
            ", ".join(sorted(ignored)),
            extra={"event": "demo.variables_ignored"},
        )
    return Settings.from_env(env, cwd=data_dir)


def _demo_messages(item_ids: dict[str, str]) -> list[DemoMessage]:
    raw = sample_messages()
    items = []
    for name, item_id in item_ids.items():
        message = BytesParser(policy=email.policy.default).parsebytes(raw[name])
        display, address = parseaddr(str(message.get("From", "")))
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        preview = re.sub(r"\s+", " ", str(text)).strip()[:PREVIEW_CHARS]
        date = message.get("Date")
        received = date.datetime.astimezone().isoformat() if date is not None and date.datetime else ""
        items.append(
            DemoMessage(
                item_id=item_id,
                subject=str(message.get("Subject", "")),
                from_name=display or address,
                from_address=address.lower(),
                received_at=_utc_z(received),
                preview=preview,
                internet_message_id=str(message.get("Message-ID", "")) or None,
            )
        )
    return items


def _utc_z(iso: str) -> str:
    from datetime import UTC, datetime

    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat().replace("+00:00", "Z")


def start_demo(
    data_dir: Path,
    public_url: str = "http://127.0.0.1:8000",
    *,
    exchange: str = "ews",
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> DemoHandle:
    """Start the doubles and build the app; the caller serves ``handle.app`` and calls ``stop``.

    :param exchange: ``"ews"`` (the EWS double) or ``"graph"`` (the Graph double, msal on behalf of
        the reporter against the Entra double over TLS).
    :raises ValueError: ``exchange`` is neither.
    :raises CommandFailed: ``data_dir`` cannot be created.
    """
    from addin_service.app import build_app
    from addin_service.bootstrap import build_container

    if exchange not in EXCHANGES:
        raise ValueError(f"exchange must be one of {', '.join(EXCHANGES)}, not {exchange!r}")
    _make_data_dir(data_dir)
    issuer: OidcIssuer | None = None
    ews: EwsServer | None = None
    graph: GraphServer | None = None
    ca_trust: DemoCaTrust | None = None
    try:
        if exchange == "graph":
            graph, issuer, ca_trust = _start_graph()
            item_ids = seed_graph_demo(graph)
            settings = demo_settings(data_dir, graph, issuer, public_url, environ)
        else:
            ews = EwsServer().start()
            issuer = OidcIssuer().start()
            item_ids = seed_demo(ews)
            settings = demo_settings(data_dir, ews, issuer, public_url, environ)
        if overrides:
            settings = settings.replace(**overrides)
        app = build_app(container=build_container(settings))
        app.extensions["addin_demo"] = DemoBackend(
            issuer=issuer,
            items=_demo_messages(item_ids),
            ews=ews,
            graph=graph,
            notify_from=settings.notify_from or "",
        )
    except BaseException:
        _stop_doubles(issuer, ews, graph, ca_trust)
        raise
    return DemoHandle(
        issuer=issuer, settings=settings, app=app, item_ids=item_ids, ews=ews, graph=graph, ca_trust=ca_trust
    )


def _make_data_dir(data_dir: Path) -> None:
    """Create the demo's data folder (and its parents) unless it exists.

    :raises CommandFailed: it cannot be created (a plain file is in the way, a read-only or virtual
        file system such as /proc, no permission), saying which folder and why.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file that is not a folder is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise CommandFailed(
            f"cannot create the demo's data folder {data_dir}: {why or exc}; choose another with --data"
        ) from exc


def _start_graph() -> tuple[GraphServer, OidcIssuer, DemoCaTrust]:
    """The Graph double and the Entra double, both over TLS, and the trust in their two CAs.

    The Graph double accepts only tokens the Entra double signed for it, so every call the service
    makes carries a token msal really acquired. The application may reach only the sending
    mailbox's mail (an application access policy); reporters' mail is read on their behalf.
    """
    directory = Path(tempfile.mkdtemp(prefix="addin-demo-tls-"))
    graph: GraphServer | None = None
    issuer: OidcIssuer | None = None
    try:
        graph_tls = make_throwaway_tls(directory / "graph", name="Report Harassment demo Graph")
        graph = GraphServer(tls=graph_tls).start()
        resource = graph.root_url
        issuer = OidcIssuer(
            tls=True,
            app_roles={resource: GRAPH_APP_ROLES},
            delegated_scopes={resource: GRAPH_DELEGATED_SCOPES},
        ).start()
        graph.verify_token = jwt_verifier(issuer.factory.jwks(), issuer=issuer.issuer, audience=resource)
        graph.state.app_mailboxes = {DEMO_NOTIFY_FROM}
        if issuer.ca_bundle_path is None:
            raise RuntimeError("the Entra double did not start with TLS")
        ca_trust = DemoCaTrust(directory, graph_tls.ca_bundle_path, issuer.ca_bundle_path)
    except BaseException:
        _stop_doubles(issuer, None, graph, None)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return graph, issuer, ca_trust


def verify_command(data_dir: Path) -> str:
    """The command that checks the demo's evidence: the defaults' own when ``data_dir`` is the
    working directory's ``var``, else one naming the demo's database and evidence folder."""
    data = data_dir.resolve()
    if data == (Path.cwd() / "var").resolve():
        return ".venv/bin/addin-service evidence verify"
    database = shlex.quote(f"sqlite:///{data / 'addin.db'}")
    evidence = shlex.quote(f"file://{data / 'evidence'}")  # as the defaults spell it: not percent-encoded
    program = shlex.quote(str(Path(sys.executable).parent / "addin-service"))
    return f"ADDIN_DATABASE_URL={database} ADDIN_EVIDENCE_URL={evidence} {program} evidence verify"


def run_demo(host: str, port: int, data_dir: Path, exchange: str = "ews") -> None:
    """Serve the demo until interrupted."""
    from addin_service.cli import waitress_server

    if threading.current_thread() is threading.main_thread():
        # `kill` stops the demo as Ctrl+C does: the doubles stop and their TLS material is deleted.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    public_url = f"http://{host}:{port}"
    handle = start_demo(data_dir, public_url, exchange=exchange, environ=os.environ)
    try:
        server = waitress_server(handle.app, host=host, port=port, threads=8, ident="addin-service-demo")
    except BaseException:
        handle.stop()
        raise
    through = (
        "the Graph double (msal on behalf of the reporter, Entra double over TLS)"
        if exchange == "graph"
        else "the EWS double"
    )
    print(  # noqa: T201 - the demo talks to a person at a terminal
        f"\n  Report Harassment for Outlook — demo, Exchange through {through}\n\n"
        f"  Open {public_url}/demo and report one of the sample messages.\n"
        f"  Read what the service sent (receipt, supervisor, security) at {public_url}/demo/mail\n"
        f"  Evidence is kept in {data_dir / 'evidence'}; check it with:\n"
        f"    {verify_command(data_dir)}\n\n"
        f"  Press Ctrl+C to stop.\n",
        flush=True,
    )
    from addin_service.notify.cli import start_worker_thread

    container = handle.app.extensions["addin"]
    stop_worker = start_worker_thread(container) if handle.settings.worker else (lambda: None)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        stop_worker()
        handle.stop()
