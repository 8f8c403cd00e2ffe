"""Checks for the unified manifest for Microsoft 365 (``manifest.json`` and its app package).

Two layers:

* :func:`check_unified` — this project's own rules, always run: ids and versions, the SSO
  resource, permissions, every action a control names exists, https everywhere, icons that the
  service really ships at the pixel sizes claimed, and the package's colour and outline icons.
* :func:`validate_against_schema` — the JSON schema that the npm package
  ``@microsoft/app-manifest`` ships, read from ``node_modules`` on this machine. It is never
  fetched: a ``$ref`` to anything outside the schema file is refused.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import validators
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from addin_service.manifest.icons import (
    COLOR_ICON_SIZE,
    MOBILE_SCALES,
    MOBILE_SIZES,
    OUTLINE_ICON_SIZE,
    REQUIRED_DESKTOP_SIZES,
    png_info,
    png_rgba,
)

SCHEMA_PACKAGE = "@microsoft/app-manifest"
PERMISSION_LEVELS = (
    "MailboxItem.Restricted.User",
    "MailboxItem.Read.User",
    "MailboxItem.ReadWrite.User",
    "Mailbox.ReadWrite.User",
)
SUPPLEMENTARY_PERMISSIONS = ("Mailbox.SharedFolder", "Mailbox.AppendOnSend.User")
_VERSION = re.compile(r"^(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})\.(0|[1-9][0-9]{0,4})$")
_URL_KEYS = re.compile(r"(url|Url|page|script)$")


@dataclass(frozen=True)
class UnifiedExpectations:
    """What the unified manifest must say about this deployment."""

    app_id: str
    version: str
    client_id: str
    api_resource: str
    host: str
    taskpane_url: str
    manifest_version: str
    icon_base_url: str
    icon_pixels: Callable[[str], int | None]


@dataclass(frozen=True)
class SchemaValidation:
    """Whether the JSON schema check ran: ``schema`` is the file used, or ``skipped`` says why not."""

    schema: Path | None
    skipped: str | None = None

    @property
    def validated(self) -> bool:
        return self.schema is not None


def schema_relative_path(manifest_version: str) -> Path:
    teams = Path(SCHEMA_PACKAGE) / "build" / "json-schemas" / "teams"
    return teams / f"v{manifest_version}" / "MicrosoftTeams.schema.json"


def find_schema(manifest_version: str, node_modules: Path | None = None,
                search_from: Iterable[Path] = ()) -> Path | None:
    """The schema file for ``manifest_version`` from a local ``node_modules``, or None.

    With ``node_modules`` given, only that directory is looked in. Otherwise every directory in
    ``search_from`` and its parents is tried for a ``node_modules`` folder.
    """
    relative = schema_relative_path(manifest_version)
    if node_modules is not None:
        candidate = node_modules / relative
        return candidate if candidate.is_file() else None
    seen: set[Path] = set()
    for start in search_from:
        for directory in (start.resolve(), *start.resolve().parents):
            if directory in seen:
                continue
            seen.add(directory)
            candidate = directory / "node_modules" / relative
            if candidate.is_file():
                return candidate
    return None


def _refuse_remote(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def validate_against_schema(manifest: dict[str, Any], schema_path: Path) -> list[str]:
    """Every schema violation, as ``path: message`` lines (empty when valid).

    :raises ValueError: the schema file is unreadable or not JSON.
    """
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the JSON schema {schema_path}: {exc}") from None
    validator_class = validators.validator_for(schema, default=validators.Draft4Validator)
    validator = validator_class(
        schema,
        registry=Registry(retrieve=_refuse_remote),  # type: ignore[call-arg]
        format_checker=validator_class.FORMAT_CHECKER,
    )
    try:
        errors = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    except Unresolvable as exc:
        raise ValueError(f"the JSON schema {schema_path} refers to {exc.ref}, outside the file; "
                         "schemas are never fetched") from None
    problems = []
    for error in errors:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        problems.append(f"schema: {where}: {error.message}")
    return problems


def default_search_paths() -> list[Path]:
    """Where ``manifest build`` looks for ``node_modules``: here, then the source checkout."""
    return [Path(os.getcwd()), Path(__file__).resolve().parents[2]]


# --- this project's rules ----------------------------------------------------------------------

class _Problems(list[str]):
    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every key of every object in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}" if path else key
            yield here, key, value
            yield from _walk(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def check_unified(manifest: Any, files: dict[str, bytes], expect: UnifiedExpectations) -> list[str]:
    """Every rule of this project that the unified manifest or its package breaks."""
    problems = _Problems()
    if not isinstance(manifest, dict):
        return ["(root): the manifest must be a JSON object"]
    _check_base(manifest, expect, problems)
    _check_urls(manifest, problems)
    _check_package_icons(manifest, files, problems)
    extensions = manifest.get("extensions")
    if not isinstance(extensions, list) or len(extensions) != 1 or not isinstance(extensions[0], dict):
        problems.add("extensions", "must hold exactly one mail extension")
    else:
        _check_extension(extensions[0], expect, problems)
    return list(problems)


def _check_base(manifest: dict[str, Any], expect: UnifiedExpectations, problems: _Problems) -> None:
    if manifest.get("manifestVersion") != expect.manifest_version:
        problems.add("manifestVersion", f"must be {expect.manifest_version}")
    schema_url = manifest.get("$schema")
    if not isinstance(schema_url, str) or f"/v{expect.manifest_version}/" not in schema_url:
        problems.add("$schema", f"must name the v{expect.manifest_version} schema")
    app_id = manifest.get("id")
    if not isinstance(app_id, str) or not _is_guid(app_id) or app_id.lower() != expect.app_id:
        problems.add("id", f"must be the add-in id {expect.app_id}")
    version = manifest.get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        problems.add("version", "must be three numbers of up to five digits (n.n.n)")
    elif version != expect.version:
        problems.add("version", f"must be {expect.version}")
    info = manifest.get("webApplicationInfo")
    if not isinstance(info, dict):
        problems.add("webApplicationInfo", "is required for single sign-on")
    else:
        if str(info.get("id", "")).lower() != expect.client_id:
            problems.add("webApplicationInfo/id", f"must be the client id {expect.client_id}")
        if info.get("resource") != expect.api_resource:
            problems.add("webApplicationInfo/resource", f"must be {expect.api_resource}")
    domains = manifest.get("validDomains")
    if not isinstance(domains, list) or expect.host not in domains:
        problems.add("validDomains", f"must list the service's host {expect.host}")
    elif any(not isinstance(d, str) or "://" in d or "/" in d for d in domains):
        problems.add("validDomains", "must list bare host names, without a scheme or a path")
    _check_permissions(manifest, problems)


def _check_permissions(manifest: dict[str, Any], problems: _Problems) -> None:
    where = "authorization/permissions/resourceSpecific"
    entries = ((manifest.get("authorization") or {}).get("permissions") or {}).get("resourceSpecific")
    if not isinstance(entries, list):
        problems.add(where, "must declare the add-in's mailbox permission")
        return
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != "Delegated":
            problems.add(where, "every Outlook add-in permission is Delegated")
    unknown = [n for n in names if n not in PERMISSION_LEVELS + SUPPLEMENTARY_PERMISSIONS]
    if unknown:
        problems.add(where, f"unknown permission {unknown[0]!r}")
    levels = [n for n in names if n in PERMISSION_LEVELS]
    if levels != ["MailboxItem.Read.User"]:
        problems.add(where, "must grant exactly one level: MailboxItem.Read.User (least privilege)")
    if len(set(names)) != len(names):
        problems.add(where, "lists a permission twice")


def _check_urls(manifest: dict[str, Any], problems: _Problems) -> None:
    for path, key, value in _walk(manifest):
        if key == "$schema" or not _URL_KEYS.search(key) or not isinstance(value, str):
            continue
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            problems.add(path, f"must be an absolute https:// URL (got {value!r})")


def _check_extension(extension: dict[str, Any], expect: UnifiedExpectations, problems: _Problems) -> None:
    requirements = extension.get("requirements") or {}
    if requirements.get("scopes") != ["mail"]:
        problems.add("extensions/0/requirements/scopes", "must be [\"mail\"]: this is an Outlook add-in")
    capabilities = requirements.get("capabilities") or []
    if not any(isinstance(c, dict) and c.get("name") == "Mailbox" for c in capabilities):
        problems.add("extensions/0/requirements/capabilities", "must require the Mailbox requirement set")
    actions: dict[str, dict[str, Any]] = {}
    runtime_ids: set[str] = set()
    for i, runtime in enumerate(extension.get("runtimes") or []):
        where = f"extensions/0/runtimes/{i}"
        if runtime.get("id") in runtime_ids:
            problems.add(where, f"runtime id {runtime.get('id')!r} is used twice")
        runtime_ids.add(runtime.get("id"))
        for j, action in enumerate(runtime.get("actions") or []):
            if action.get("id") in actions:
                problems.add(f"{where}/actions/{j}", f"action id {action.get('id')!r} is used twice")
            actions[action.get("id")] = runtime
            page = (runtime.get("code") or {}).get("page")
            if action.get("type") == "openPage" and page != expect.taskpane_url:
                problems.add(f"{where}/code/page", f"must open the task pane {expect.taskpane_url}")
    control_ids: set[str] = set()
    for path, key, value in _walk(extension.get("ribbons") or [], "extensions/0/ribbons"):
        if key == "actionId" and value not in actions:
            problems.add(path, f"names action {value!r}, which no runtime defines")
        if key in ("groups", "controls", "customMobileRibbonGroups") and isinstance(value, list):
            for k, item in enumerate(value):
                if isinstance(item, dict) and "id" in item:
                    if item["id"] in control_ids:
                        problems.add(f"{path}/{k}/id", f"id {item['id']!r} is used twice")
                    control_ids.add(item["id"])
        if key == "icons" and isinstance(value, list):
            _check_icon_list(path, value, expect, problems)
    alternates = extension.get("alternates") or []
    for i, alternate in enumerate(alternates):
        icons = alternate.get("alternateIcons") if isinstance(alternate, dict) else None
        if isinstance(icons, dict):
            for name, pixels in (("icon", 64), ("highResolutionIcon", 128)):
                icon = icons.get(name) or {}
                where = f"extensions/0/alternates/{i}/alternateIcons/{name}"
                _check_icon_file(where, icon.get("url"), pixels, expect, problems)


def _check_icon_list(path: str, icons: list[Any], expect: UnifiedExpectations, problems: _Problems) -> None:
    mobile = any(isinstance(i, dict) and "scale" in i for i in icons)
    seen: set[tuple[int, int]] = set()
    for k, icon in enumerate(icons):
        if not isinstance(icon, dict):
            continue
        size, scale = icon.get("size"), icon.get("scale", 1)
        if not isinstance(size, int) or not isinstance(scale, int):
            problems.add(f"{path}/{k}", "needs a whole-number size (and scale)")
            continue
        if (size, scale) in seen:
            problems.add(f"{path}/{k}", f"size {size} at scale {scale} appears twice")
        seen.add((size, scale))
        _check_icon_file(f"{path}/{k}/url", icon.get("url"), size * scale, expect, problems)
    if mobile:
        missing = {(s, k) for s in MOBILE_SIZES for k in MOBILE_SCALES} - seen
        if missing:
            problems.add(path, "misses mobile icons " + ", ".join(f"{s}@{k}x" for s, k in sorted(missing)))
    else:
        missing_sizes = set(REQUIRED_DESKTOP_SIZES) - {s for s, _ in seen}
        if missing_sizes:
            problems.add(path, "needs icons of size " + ", ".join(map(str, sorted(missing_sizes))))


def _check_icon_file(where: str, url: Any, pixels: int, expect: UnifiedExpectations,
                     problems: _Problems) -> None:
    if not isinstance(url, str) or not url.startswith(expect.icon_base_url):
        problems.add(where, f"must be one of the service's icons under {expect.icon_base_url}")
        return
    actual = expect.icon_pixels(url[len(expect.icon_base_url):])
    if actual is None:
        problems.add(where, f"points to {url}, but the service has no such icon")
    elif actual != pixels:
        problems.add(where, f"needs a {pixels}x{pixels} image, but {url} is {actual}x{actual}")


def _check_package_icons(manifest: dict[str, Any], files: dict[str, bytes], problems: _Problems) -> None:
    icons = manifest.get("icons")
    if not isinstance(icons, dict):
        problems.add("icons", "must name the colour and outline icons")
        return
    for key, pixels in (("color", COLOR_ICON_SIZE), ("outline", OUTLINE_ICON_SIZE)):
        name = icons.get(key)
        if not isinstance(name, str) or name not in files:
            problems.add(f"icons/{key}", f"names {name!r}, which is not in the app package")
            continue
        try:
            info = png_info(files[name])
        except ValueError as exc:
            problems.add(f"icons/{key}", f"{name} is not a valid PNG: {exc}")
            continue
        if (info.width, info.height) != (pixels, pixels):
            actual = f"{info.width}x{info.height}"
            problems.add(f"icons/{key}", f"{name} must be {pixels}x{pixels} pixels (is {actual})")
        if key == "outline":
            _check_outline(name, files[name], info.has_alpha, problems)


def _check_outline(name: str, data: bytes, has_alpha: bool, problems: _Problems) -> None:
    """The outline icon is white on transparent: every visible pixel white, the rest clear."""
    if not has_alpha:
        problems.add("icons/outline", f"{name} must have a transparent background (an alpha channel)")
        return
    try:
        pixels = png_rgba(data)
    except ValueError as exc:
        problems.add("icons/outline", f"{name} cannot be read: {exc}")
        return
    visible = [p for p in pixels if p[3] > 0]
    if not visible or len(visible) == len(pixels):
        problems.add("icons/outline", f"{name} must be a white outline on a transparent background")
    elif any(p[:3] != (255, 255, 255) for p in visible):
        problems.add("icons/outline", f"{name} must use white only")


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
