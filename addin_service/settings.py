"""Configuration: ``ADDIN_*`` environment variables validated once, at start, into a frozen object.

A bad or missing value raises :class:`~addin_service.errors.ConfigError` whose message starts
with the variable's name, so start-up stops with one line that says what to fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from addin_service.client_certificate import (
    CLIENT_CERTIFICATE,
    CLIENT_CERTIFICATE_PASSWORD,
    load_client_certificate,
)
from addin_service.errors import ConfigError

PREFIX = "ADDIN_"
DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NETWORKS: tuple[IpNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secure_url(value: str, *, allow_loopback_http: bool = True) -> str:
    """An https URL, or http only towards this machine (the demo and the test doubles)."""
    parts = urlsplit(value)
    if not parts.netloc or parts.scheme not in ("https", "http"):
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and not (allow_loopback_http and is_loopback_host(parts.hostname)):
        raise ValueError("must use https:// (plain http is accepted only for loopback addresses)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials in the URL")
    return value.rstrip("/")


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration setting needs more than a year; much longer ones overflow date arithmetic (the
# escalation worker's "now - escalate_after" raised OverflowError on every loop, so nothing escalated).
MAX_DURATION_SECONDS = 365 * 86400


def parse_duration(value: str, *, maximum: int = MAX_DURATION_SECONDS) -> int:
    """'90', '90s', '30m', '24h', '7d' → seconds, at most ``maximum`` (365 days unless told)."""
    m = _DURATION.match(value)
    if not m:
        raise ValueError("must be a duration such as 3600, 30m, 24h or 7d")
    digits, unit = m.group(1), m.group(2) or "s"
    # Bounded before int(): a thousand-digit number is refused here, not by the interpreter's limit.
    seconds = int(digits) * _UNIT_SECONDS[unit] if len(digits) <= 18 else maximum + 1
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > maximum:
        raise ValueError(f"must be at most {_duration_text(maximum)}")
    return seconds


def _duration_text(seconds: int) -> str:
    """``seconds`` in the largest unit :func:`parse_duration` reads back exactly (365d, 90m)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _email(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}|[^@\s<>]+@localhost", value):
        raise ValueError("must be one email address, such as security@contoso.com")
    return value.lower()


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("must be a GUID such as 00000000-0000-0000-0000-000000000000") from None


def _tenant(value: str) -> str:
    if value in ("common", "organizations"):
        raise ValueError("must be your tenant's GUID or domain, not a multi-tenant alias")
    try:
        return _guid(value)
    except ValueError:
        if re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,63}", value):
            return value.lower()
        raise ValueError("must be your tenant's GUID or primary domain") from None


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if n <= 0:
        raise ValueError("must be a positive whole number")
    return n


def _rate(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\S+)\s*", value)
    if not m:
        raise ValueError("must look like 20/10m (twenty reports per ten minutes per caller)")
    count = int(m.group(1))
    if count <= 0:
        raise ValueError("the count must be positive")
    return count, parse_duration(m.group(2))


def _networks(value: str) -> tuple[IpNetwork, ...]:
    if value.strip().lower() == "none":
        return ()
    networks = []
    for part in _csv(value):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(
                f"{part!r} is not an IP address or network; give a comma-separated list such as "
                "127.0.0.1,10.1.2.0/24 (or none)"
            ) from None
    return tuple(networks)


def _bearer_secret(value: str) -> str:
    if len(value) < 32 or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise ValueError("must be at least 32 printable characters with no spaces (e.g. openssl rand -hex 32)")
    return value


def _file_or_s3_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            # file://host/path names a file on another machine (RFC 8089); it would be read as /path here.
            raise ValueError("file URLs name a folder on this machine: file:///var/lib/addin/evidence (no host)")
        if not parts.path.startswith("/"):
            raise ValueError("file URLs must be absolute: file:///var/lib/addin/evidence")
        return value
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError("s3 URLs need a bucket: s3://bucket/prefix")
        return value
    raise ValueError("must be file:///absolute/path or s3://bucket/prefix")


DATABASE_URL_FORMS = "sqlite:////absolute/path/addin.db (or sqlite:///relative/path.db) or postgresql://user@host/db"
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")


def _database_url(value: str) -> str:
    """An SQLite file or a PostgreSQL database, as SQLAlchemy reads it; PostgreSQL always through
    psycopg 3, whatever driver the admin wrote.

    Checked here so that a URL the database layer could not use stops start-up naming the variable,
    rather than the first connection. No message repeats any part of the value: it may hold a password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = value.strip()
    try:
        url = make_url(value)
        backend = url.get_backend_name()
        port = url.port  # a port that is not a number fails in make_url already
    except (ArgumentError, ValueError):
        raise ValueError(f"is not a database URL; it must be {DATABASE_URL_FORMS}") from None
    if backend in ("postgres", "postgresql"):
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("the PostgreSQL port must be 1-65535, as in postgresql://user@host:5432/db")
        rest = value.split("://", 1)[1]  # make_url takes no URL without "://"
        return f"postgresql+psycopg://{rest}"
    if backend != "sqlite":
        raise ValueError(f"must name an SQLite or PostgreSQL database: {DATABASE_URL_FORMS}")
    if url.drivername not in _SQLITE_DRIVERS:
        raise ValueError(f"SQLite is reached through Python's own sqlite3 driver: {DATABASE_URL_FORMS}")
    if url.host or url.username or url.password or port is not None:
        raise ValueError(
            "an SQLite URL has no host: the file's path follows three slashes, as in "
            "sqlite:////absolute/path/addin.db or sqlite:///relative/path.db"
        )
    database = url.database or ""
    if not database:
        raise ValueError("names no database file: give its path, as in sqlite:////var/lib/addin/addin.db")
    if database == ":memory:" or database.startswith("file:") or "uri" in url.query:
        raise ValueError(
            "must name a database file by its path: an in-memory SQLite database (or a file: URI) would "
            "lose every case when the process stops; use sqlite:////var/lib/addin/addin.db"
        )
    if Path(database).is_dir():
        raise ValueError("names a folder, not a database file: add the file's name, as in sqlite:////var/lib/addin/addin.db")
    return value


_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _domain(entry: str) -> str:
    """A domain name, lower-case, internationalised ones in their IDNA (``xn--``) form, which is how
    sender domains are compared (``cases.origin_headers.domain_of``); a trailing dot is kept."""
    domain = entry.strip().lower()
    try:
        encoded = domain.encode("idna").decode("ascii")
    except UnicodeError:
        encoded = ""
    labels = encoded.removesuffix(".").split(".")
    if (
        len(labels) < 2
        or len(encoded.removesuffix(".")) > 253
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(
            f"{entry.strip()!r} is not a domain name; give domain names only, comma-separated, "
            "such as contoso.com,fabrikam.com (no @, no spaces)"
        )
    return encoded


def _domains(value: str) -> tuple[str, ...]:
    return tuple(_domain(entry) for entry in _csv(value))


def _smtp_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise ValueError("must be smtp://host:25, smtp+starttls://user:pass@host:587 or smtps://host:465")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        v = value.strip().lower()
        if v not in options:
            raise ValueError(f"must be one of: {', '.join(options)}")
        return v

    return check


def _text(value: str) -> str:
    return value.strip()


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
MAX_SHOWN_TEXT = 200


def _shown_text(value: str) -> str:
    """A name or number people read (in the pane, in every email): one line, no control characters."""
    text = value.strip()
    if _CONTROL.search(text):
        raise ValueError("must be one line of text without control characters")
    if len(text) > MAX_SHOWN_TEXT:
        raise ValueError(f"must be at most {MAX_SHOWN_TEXT} characters")
    return text


def _authserv_id(value: str) -> str:
    """An Authentication-Results authserv-id (RFC 8601: a domain name, in practice): one token."""
    text = value.strip().lower()
    if not text or any(c.isspace() or c in ';"()\\' for c in text) or _CONTROL.search(text):
        raise ValueError(f"{text!r} is not an authserv-id (a host name such as mx.contoso.com)")
    return text


def _scope(value: str) -> str:
    text = value.strip()
    if not _SCOPE_TOKEN.fullmatch(text):
        raise ValueError("must be one scope name without spaces or quotes, as in access_as_user")
    return text


def _base_url(value: str) -> str:
    """A secure URL that others are appended to: a query or fragment would end up in the middle."""
    if urlsplit(value.strip()).query or "#" in value:
        raise ValueError("must be a base URL without a query (?…) or fragment (#…)")
    return _secure_url(value.strip())


def _web_link(value: str) -> str:
    """A link people follow from the pane and the emails: an absolute http(s) URL to any host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError("must be an absolute https:// URL")
    if parts.username or parts.password or _CONTROL.search(value.strip()):
        raise ValueError("must be a plain https:// URL (no credentials, no control characters)")
    return value.strip()


def _existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError(f"no readable file at {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting, validated. Field ``foo_bar`` comes from ``ADDIN_FOO_BAR``."""

    database_url: str = ""
    evidence_url: str = ""
    exchange: str = "ews"
    ews_url: str | None = None
    ews_auth: str = "ntlm"
    ews_username: str | None = None
    ews_password: str | None = field(default=None, repr=False)
    ews_version: str | None = None
    ews_timeout: int = 30
    exchange_max_wait: int = 20
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_certificate: str | None = None
    client_certificate_password: str | None = field(default=None, repr=False)
    authority: str = "https://login.microsoftonline.com"
    audience: tuple[str, ...] = ()
    required_scope: str = "access_as_user"
    accepted_domains: tuple[str, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()
    security_mailbox: str | None = None
    security_team: tuple[str, ...] = ()
    fallback_mailbox: str | None = None
    notify_from: str | None = None
    notify_transport: str = "ews"  # from_env: "graph" when ADDIN_EXCHANGE=graph and this is unset
    smtp_url: str | None = field(default=None, repr=False)
    signing_key: str | None = None
    supervisor_map: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    internal_affairs_mailbox: str | None = None
    internal_affairs_name: str = "Internal Affairs"
    investigations_mailbox: str | None = None
    investigations_name: str = "Office of Investigations"
    security_attach_message: bool = True
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    escalate_after: int = 24 * 3600
    graph_url: str = "https://graph.microsoft.com/v1.0"
    graph_auth: str = "obo"
    rate_limit: tuple[int, int] = (20, 600)
    metrics_allow: tuple[IpNetwork, ...] = LOOPBACK_NETWORKS
    metrics_token: str | None = field(default=None, repr=False)
    eap_name: str = "Employee Assistance Program"
    eap_phone: str = ""
    eap_url: str = ""
    support_phone: str = ""
    incident_response_phone: str = ""
    emergency_number: str = "911"
    office_js_url: str = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
    log_level: str = "info"
    worker: bool = True
    demo: bool = False

    @property
    def evidence_path(self) -> Path | None:
        parts = urlsplit(self.evidence_url)
        return Path(parts.path) if parts.scheme == "file" else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def issuer_discovery_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/v2.0/.well-known/openid-configuration"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
        """Build settings from ``ADDIN_*`` variables (``os.environ`` by default).

        :raises ConfigError: naming the first bad variable.
        """
        env = dict(os.environ if environ is None else environ)
        base = (cwd or Path.cwd()).resolve()
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{base / 'var' / 'addin.db'}",
            "evidence_url": f"file://{base / 'var' / 'evidence'}",
        }
        known = {f.name for f in fields(cls)}
        for name in sorted(env):
            if not name.startswith(PREFIX):
                continue
            key = name[len(PREFIX) :].lower()
            if key not in known:
                continue  # Tolerated: other tools share the prefix; documented in the README.
            raw = env[name]
            if raw.strip() == "":
                continue  # An empty variable means "use the default".
            parser = _PARSERS.get(key, _text)
            try:
                values[key] = parser(raw)
            except ValueError as exc:
                raise ConfigError(name, f"{exc} (got {_shown(key, raw)})") from None
        # Unset, notifications go out the way Exchange is reached: Exchange Online has no EWS.
        values.setdefault("notify_transport", "graph" if values.get("exchange") == "graph" else "ews")
        settings = cls(**values)
        settings._check_combinations()
        return settings

    def replace(self, **changes: Any) -> Settings:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        new = Settings(**data)
        new._check_combinations()
        return new

    def _check_combinations(self) -> None:
        """Rules that span variables; each error names the variable to set."""
        if self.exchange == "ews":
            if not self.ews_url:
                raise ConfigError(
                    "ADDIN_EWS_URL",
                    "is required when ADDIN_EXCHANGE=ews (e.g. https://mail.contoso.com/EWS/Exchange.asmx)",
                )
            if self.ews_auth in ("basic", "ntlm"):
                if not self.ews_username:
                    raise ConfigError(
                        "ADDIN_EWS_USERNAME", f"is required when ADDIN_EWS_AUTH={self.ews_auth}"
                    )
                if not self.ews_password:
                    raise ConfigError(
                        "ADDIN_EWS_PASSWORD", f"is required when ADDIN_EWS_AUTH={self.ews_auth}"
                    )
        if self.client_certificate_password and not self.client_certificate:
            raise ConfigError(CLIENT_CERTIFICATE_PASSWORD, f"is set but {CLIENT_CERTIFICATE} is not")
        if self.client_certificate:
            load_client_certificate(self.client_certificate, self.client_certificate_password)
        if self.exchange == "ews" and self.ews_auth.startswith("oauth") and not self.client_secret:
            raise ConfigError(
                "ADDIN_CLIENT_SECRET",
                f"is required when ADDIN_EWS_AUTH={self.ews_auth}: OAuth to EWS (exchangelib) takes no "
                f"certificate; {CLIENT_CERTIFICATE} serves ADDIN_EXCHANGE=graph",
            )
        if self.exchange == "graph" and not (self.client_secret or self.client_certificate):
            raise ConfigError(
                "ADDIN_CLIENT_SECRET", f"or {CLIENT_CERTIFICATE} is required for OAuth access to Exchange"
            )
        if not self.tenant_id:
            raise ConfigError("ADDIN_TENANT_ID", "is required: tokens are validated against your tenant")
        if not self.client_id:
            raise ConfigError("ADDIN_CLIENT_ID", "is required: the add-in's Entra ID application (client) id")
        if not self.audience:
            object.__setattr__(self, "audience", (self.client_id, f"api://{self.client_id}"))
        if self.notify_transport == "smtp" and not self.smtp_url:
            raise ConfigError("ADDIN_SMTP_URL", "is required when ADDIN_NOTIFY_TRANSPORT=smtp")


def _shown(key: str, raw: str) -> str:
    """Echo a bad value back, unless it is a secret."""
    if key in {"ews_password", "client_secret", "smtp_url", "database_url", "metrics_token"}:
        return "a value that is not shown because it may hold a secret"
    return repr(raw if len(raw) <= 80 else raw[:77] + "...")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "evidence_url": _file_or_s3_url,
    "exchange": _choice("ews", "graph"),
    "ews_url": _secure_url,
    "ews_auth": _choice("basic", "ntlm", "oauth-app", "oauth-obo"),
    "ews_timeout": _positive_int,
    "exchange_max_wait": _positive_int,
    "tenant_id": _tenant,
    "client_id": _guid,
    "client_certificate": _existing_file,
    "client_certificate_password": str,  # as given: a passphrase may begin or end with a space
    "authority": _base_url,
    "required_scope": _scope,
    "audience": _csv,
    "accepted_domains": _domains,
    "trusted_authserv_ids": lambda v: tuple(_authserv_id(d) for d in _csv(v)),
    "security_mailbox": _email,
    "security_team": lambda v: tuple(_email(address) for address in _csv(v)),
    "fallback_mailbox": _email,
    "notify_from": _email,
    "notify_transport": _choice("ews", "graph", "smtp"),
    "smtp_url": _smtp_url,
    "signing_key": _existing_file,
    "supervisor_map": _existing_file,
    "public_url": _base_url,
    "internal_affairs_mailbox": _email,
    "investigations_mailbox": _email,
    "security_attach_message": _bool,
    "max_message_bytes": _positive_int,
    "escalate_after": parse_duration,
    "graph_url": _base_url,
    "eap_url": _web_link,
    "eap_name": _shown_text,
    "eap_phone": _shown_text,
    "support_phone": _shown_text,
    "incident_response_phone": _shown_text,
    "emergency_number": _shown_text,
    "internal_affairs_name": _shown_text,
    "investigations_name": _shown_text,
    "graph_auth": _choice("obo", "app"),
    "rate_limit": _rate,
    "metrics_allow": _networks,
    "metrics_token": _bearer_secret,
    "log_level": _choice("debug", "info", "warning", "error"),
    "worker": _bool,
    "demo": _bool,
    "office_js_url": _secure_url,
}
