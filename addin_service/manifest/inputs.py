"""The inputs of ``manifest build``, checked once and normalised.

Every check raises :class:`~addin_service.manifest.errors.ManifestInputError` naming the flag to
fix, so the command stops with one line that says what is wrong and how to put it right.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from addin_service.manifest.errors import ManifestInputError

# Fixed forever: the namespace of add-in ids derived from (client id, public URL). Changing it
# would give every deployment a new add-in id on its next rebuild.
APP_ID_NAMESPACE = uuid.UUID("6c1d3c53-3f0b-5b1e-9d57-2c6f0a4e8b21")

DEFAULT_VERSION = "1.0.0.0"
DEFAULT_DISPLAY_NAME = "Report harassment"
MAX_DISPLAY_NAME = 30  # the unified manifest's name.short; the XML allows more
MAX_HOST = 200  # keeps api://<host>/<client id> within the XML manifest's 250-character limit

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_VERSION = re.compile(r"^(0|[1-9][0-9]{0,4})(\.(0|[1-9][0-9]{0,4})){0,3}$")


@dataclass(frozen=True)
class ManifestInputs:
    """Validated, normalised inputs. URLs carry no trailing slash."""

    public_url: str
    host: str  # host[:port] as it appears in URLs, lower case
    client_id: str  # canonical lower-case GUID
    app_id: str
    version: str  # the XML manifest's Version: one to four numbers
    unified_version: str  # the unified manifest's version: exactly three numbers
    display_name: str
    support_url: str

    @property
    def origin(self) -> str:
        return f"https://{self.host}"

    @property
    def taskpane_url(self) -> str:
        return f"{self.public_url}/taskpane.html"

    @property
    def commands_url(self) -> str:
        """The UI-less function file Outlook may load; the add-in has no function commands."""
        return f"{self.public_url}/commands.html"

    @property
    def api_resource(self) -> str:
        """The Application ID URI that Office SSO expects: ``api://<host>/<client id>``."""
        return f"api://{self.host}/{self.client_id}"

    @property
    def naa_redirect_uri(self) -> str:
        """The SPA redirect URI that lets Outlook broker tokens (nested app authentication)."""
        return f"brk-multihub://{self.host}"


def parse_inputs(
    public_url: str,
    client_id: str,
    *,
    app_id: str | None = None,
    version: str = DEFAULT_VERSION,
    display_name: str = DEFAULT_DISPLAY_NAME,
    support_url: str | None = None,
) -> ManifestInputs:
    """Check and normalise every input of a manifest build.

    :raises ManifestInputError: naming the first bad flag.
    """
    url, host = _public_url(public_url)
    client = _guid("--client-id", client_id,
                   what="the Application (client) ID of the add-in's Entra ID app")
    if app_id is None:
        add_in_id = derive_app_id(client, url)
    else:
        add_in_id = _guid("--app-id", app_id, what="a stable GUID for the add-in")
    xml_version, unified_version = _version(version)
    support = _support_url(support_url) if support_url is not None else f"{url}/"
    return ManifestInputs(
        public_url=url,
        host=host,
        client_id=client,
        app_id=add_in_id,
        version=xml_version,
        unified_version=unified_version,
        display_name=_display_name(display_name),
        support_url=support,
    )


def derive_app_id(client_id: str, public_url: str) -> str:
    """The add-in id used when ``--app-id`` is not given: the same inputs always give the same id."""
    return str(uuid.uuid5(APP_ID_NAMESPACE, f"{client_id.lower()}\n{public_url}"))


def _public_url(value: str) -> tuple[str, str]:
    flag = "--public-url"
    if not value or value != value.strip() or any(ch.isspace() for ch in value):
        raise ManifestInputError(
            flag, f"must be an https URL without spaces, such as https://report.contoso.com (got {value!r})")
    if "?" in value or "#" in value:
        raise ManifestInputError(
            flag, "must not carry a query (?...) or a fragment (#...): give the service's base URL")
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. a malformed [IPv6] address
        raise ManifestInputError(flag, f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() != "https":
        raise ManifestInputError(
            flag, f"must start with https:// (Outlook loads add-ins only over HTTPS); got {value!r}")
    if "@" in parts.netloc:
        raise ManifestInputError(flag, "must not carry a user name or password")
    host = _host(flag, parts.netloc, hostname)
    try:
        port = parts.port
    except ValueError:
        raise ManifestInputError(flag, f"has an invalid port in {parts.netloc!r}") from None
    if port is not None and port != 443:
        host = f"{host}:{port}"
    if len(host) > MAX_HOST:
        raise ManifestInputError(flag, f"the host name is too long (at most {MAX_HOST} characters)")
    path = parts.path.rstrip("/")
    if not _PATH.match(path) or "/../" in f"{path}/" or "/./" in f"{path}/" or "//" in path:
        raise ManifestInputError(
            flag, f"has an unusable path {parts.path!r}: use plain segments such as /addin")
    return f"https://{host}{path}", host


def _host(flag: str, netloc: str, hostname: str | None) -> str:
    if not hostname:
        raise ManifestInputError(flag, "must name a host, such as https://report.contoso.com")
    if not hostname.isascii():
        raise ManifestInputError(
            flag, "must use an ASCII host name (write internationalised names in punycode, xn--...)")
    if netloc.split("]")[0].startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise ManifestInputError(flag, f"has an invalid IPv6 address {hostname!r}") from None
        return f"[{hostname}]"
    try:
        ipaddress.IPv4Address(hostname)
        return hostname
    except ValueError:
        pass
    labels = hostname.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ManifestInputError(flag, f"has an invalid host name {hostname!r}")
    return ".".join(labels)


def _guid(flag: str, value: str, *, what: str) -> str:
    try:
        parsed = uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        raise ManifestInputError(
            flag, f"must be a GUID such as 00000000-0000-0000-0000-000000000000: {what} (got {value!r})"
        ) from None
    if parsed.int == 0:
        raise ManifestInputError(flag, f"must not be the all-zero GUID: use {what}")
    return str(parsed)


def _version(value: str) -> tuple[str, str]:
    flag = "--version"
    if not _VERSION.match(value):
        raise ManifestInputError(
            flag, "must be one to four numbers of up to five digits each, without leading zeros, "
            f"such as 1.0.0.0 (got {value!r})")
    parts = value.split(".")
    if len(parts) == 4 and parts[3] != "0":
        raise ManifestInputError(
            flag, "the unified manifest takes three numbers (n.n.n): give 1.2.3 or 1.2.3.0, "
            "and raise one of the first three on every release")
    unified = ".".join((parts + ["0", "0"])[:3])
    return value, unified


def _display_name(value: str) -> str:
    flag = "--display-name"
    name = value.strip()
    if not name:
        raise ManifestInputError(flag, "must not be empty")
    if len(name) > MAX_DISPLAY_NAME:
        raise ManifestInputError(
            flag, f"must be at most {MAX_DISPLAY_NAME} characters, the Microsoft 365 app name limit "
            f"(got {len(name)})")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ManifestInputError(flag, "must not contain control characters")
    return name


def _support_url(value: str) -> str:
    flag = "--support-url"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        hostname = None
    if any(ch.isspace() for ch in value) or not value.lower().startswith("https://") or not hostname:
        raise ManifestInputError(
            flag, f"must be an absolute https URL of a page that says where to get help (got {value!r})")
    if "@" in parts.netloc:
        raise ManifestInputError(flag, "must not carry a user name or password")
    if len(value) > 2048:
        raise ManifestInputError(flag, "must be at most 2048 characters")
    return value
