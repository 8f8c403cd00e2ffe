"""Static assets of the task pane and the demo: versioned URLs, cache headers, content policies.

Every page links its CSS and JS as ``/static/<name>?v=<hash of the file>``. A request carrying the
current hash may be cached for a year (the URL changes whenever the file does); any other request
(an icon, an old hash, no hash) is answered with ``no-cache`` so the browser revalidates with the
ETag. Nothing is cached across a deployment by mistake, and nothing is fetched twice needlessly.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from addin_service.settings import Settings

STATIC_ROOT = Path(__file__).resolve().parent / "static"
MSAL_BUNDLE = "vendor/msal-browser.min.js"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

# Outlook on the web, new Outlook (Windows and Mac, which host Outlook on the web), Outlook.com
# and the Office web shell frame add-in pages from these origins. Classic Outlook on Windows and
# Mac and Outlook mobile show the pane top-level in a web view, so no ancestor applies there.
OUTLOOK_WEB_ORIGINS = (
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.cloud.microsoft",
    "https://outlook.live.com",
    "https://*.officeapps.live.com",
)
# Office.js pulls in Microsoft's AJAX library from this CDN on some hosts.
OFFICE_AJAX_ORIGIN = "https://ajax.aspnetcdn.com"
MICROSOFT_OFFICE_JS_ORIGIN = "https://appsforoffice.microsoft.com"


@dataclass(frozen=True)
class _Fingerprint:
    mtime_ns: int
    size: int
    version: str
    integrity: str


_cache: dict[Path, _Fingerprint] = {}
_lock = threading.Lock()


def _fingerprint(path: Path) -> _Fingerprint | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    known = _cache.get(path)
    if known is not None and known.mtime_ns == stat.st_mtime_ns and known.size == stat.st_size:
        return known
    data = path.read_bytes()
    fingerprint = _Fingerprint(
        mtime_ns=stat.st_mtime_ns,
        size=stat.st_size,
        version=hashlib.sha256(data).hexdigest()[:16],
        integrity="sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii"),
    )
    with _lock:
        _cache[path] = fingerprint
    return fingerprint


def static_path(name: str) -> Path | None:
    """The file under ``static/`` that ``name`` names, or None if it is outside or missing."""
    candidate = (STATIC_ROOT / name).resolve()
    if not candidate.is_relative_to(STATIC_ROOT) or not candidate.is_file():
        return None
    return candidate


def version_of(name: str) -> str | None:
    """Short content hash of a static file, or None when there is no such file."""
    path = static_path(name)
    found = _fingerprint(path) if path is not None else None
    return found.version if found is not None else None


def integrity_of(name: str) -> str | None:
    """Subresource-integrity value (``sha384-...``) of a static file, or None when it is missing."""
    path = static_path(name)
    found = _fingerprint(path) if path is not None else None
    return found.integrity if found is not None else None


def version_of_existing(name: str) -> str:
    """Like :func:`version_of`, for assets that must exist.

    :raises FileNotFoundError: the asset does not exist (a packaging mistake, caught by tests).
    """
    version = version_of(name)
    if version is None:
        raise FileNotFoundError(f"static asset {name!r} is missing")
    return version


def cache_control(name: str, requested_version: str | None) -> str:
    """Long caching only when the URL names the file's current content."""
    if requested_version and requested_version == version_of(name):
        return IMMUTABLE
    return REVALIDATE


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def frame_ancestors(settings: Settings) -> tuple[str, ...]:
    """Who may frame the task pane.

    The demo frames the pane from this service itself, so demo mode needs only ``'self'``. In
    production, Outlook's web origins, plus Outlook on the web of an Exchange Server, which is
    served from the same host as its EWS endpoint.
    """
    if settings.demo:
        return ("'self'",)
    sources = ["'self'", *OUTLOOK_WEB_ORIGINS]
    if settings.exchange == "ews" and settings.ews_url:
        owa = origin_of(settings.ews_url)
        if owa not in sources:
            sources.append(owa)
    return tuple(sources)


def pane_csp(settings: Settings) -> str:
    """The task pane's Content-Security-Policy: no inline script or style, nothing but what it uses."""
    scripts = ["'self'"]
    if not settings.demo:
        office = origin_of(settings.office_js_url)
        scripts.append(office)
        if office == MICROSOFT_OFFICE_JS_ORIGIN:
            scripts.append(OFFICE_AJAX_ORIGIN)
    connect = ["'self'", origin_of(settings.authority)]
    directives = [
        "default-src 'self'",
        f"script-src {' '.join(scripts)}",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src {' '.join(connect)}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        f"frame-ancestors {' '.join(frame_ancestors(settings))}",
    ]
    return "; ".join(directives)


DEMO_PAGE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
