"""Render the two manifests from their templates and the checked inputs.

Rendering is pure: the same inputs give the same bytes. Nothing here touches the disk except to
read the packaged templates.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined

from addin_service.manifest.icons import (
    ADDIN_ICON_SIZE,
    DESKTOP_SIZES,
    HIGH_RES_ICON_SIZE,
    MOBILE_SCALES,
    MOBILE_SIZES,
    UNIFIED_DESKTOP_SIZES,
    icon_url,
)
from addin_service.manifest.inputs import ManifestInputs

UNIFIED_MANIFEST_VERSION = "1.22"
UNIFIED_SCHEMA_URL = (
    f"https://developer.microsoft.com/json-schemas/teams/v{UNIFIED_MANIFEST_VERSION}/MicrosoftTeams.schema.json"
)
PROVIDER_NAME = "Report Harassment for Outlook"
LOCALE = "en-US"
ACCENT_COLOR = "#1E5AA8"
REQUESTED_HEIGHT = 350
COLOR_ICON_IN_PACKAGE = "color.png"
OUTLINE_ICON_IN_PACKAGE = "outline.png"

# Mailbox requirement sets: the base manifest activates from 1.1 (the add-in bar on the oldest
# clients); add-in commands live in Mailbox 1.3 (VersionOverrides 1.0); VersionOverrides 1.1
# (mobile, shared folders, SSO) is tied to Mailbox 1.5.
MAILBOX = {"base": "1.1", "commands": "1.3", "overrides_1_1": "1.5"}

# Delegated scopes Office asks consent for in legacy SSO (Office.auth.getAccessToken). The service
# reads the reported message with the on-behalf-of flow: Mail.Read, and User.Read for the profile.
SSO_SCOPES = ("openid", "profile", "User.Read", "Mail.Read")

STRINGS = {
    "group_label": "Safety",
    "button_label": "Report harassment",
    "button_tip": (
        "Keep this message as evidence, with all its headers, and tell the people who can help. "
        "The message stays in your mailbox."
    ),
    "description": (
        "Report a harassing or threatening email in one click. The message is kept unchanged, with "
        "all its headers, as tamper-evident evidence; the right people are told; and you see where "
        "to get help."
    ),
    "short_description": "Report a harassing email: keep it as evidence and get help.",
}

IDS = {
    "group": "msgReadGroup",
    "button": "msgReadReportButton",
    "mobile_group": "mobileMsgReadGroup",
    "mobile_button": "mobileMsgReadReportButton",
    "runtime": "TaskPaneRuntime",
    "action": "ShowReportPane",
}

RESIDS = {
    "group_label": "Group.Label",
    "button_label": "ReportButton.Label",
    "button_tip": "ReportButton.Tooltip",
    "taskpane_url": "Taskpane.Url",
    "commands_url": "Commands.Url",
}


def image_resid(pixels: int) -> str:
    return f"Icon.{pixels}"


def _environment() -> Environment:
    return Environment(  # noqa: S701 - autoescape is on; the XML is escaped as HTML-compatible XML.
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _template_source(name: str) -> str:
    return (resources.files("addin_service.manifest") / "templates" / name).read_text(encoding="utf-8")


def _full_name(display_name: str) -> str:
    """The unified manifest's long name: the product's name, with the local name when it differs."""
    if display_name.lower() in PROVIDER_NAME.lower():
        return PROVIDER_NAME
    return f"{display_name} ({PROVIDER_NAME})"


def template_context(inputs: ManifestInputs) -> dict[str, Any]:
    """Every value the templates use, derived from the inputs only."""
    base = inputs.public_url
    mobile_icons = [
        {"size": size, "scale": scale, "pixels": size * scale}
        for size in MOBILE_SIZES
        for scale in MOBILE_SCALES
    ]
    image_pixels = sorted(set(DESKTOP_SIZES) | {icon["pixels"] for icon in mobile_icons})
    return {
        "app_id": inputs.app_id,
        "version": inputs.version,
        "provider_name": PROVIDER_NAME,
        "locale": LOCALE,
        "display_name": inputs.display_name,
        "full_name": _full_name(inputs.display_name),
        "strings": STRINGS,
        "ids": IDS,
        "res": RESIDS,
        "mailbox": MAILBOX,
        "icon_url": icon_url(base, ADDIN_ICON_SIZE),
        "high_resolution_icon_url": icon_url(base, HIGH_RES_ICON_SIZE),
        "addin_icon_size": ADDIN_ICON_SIZE,
        "support_url": inputs.support_url,
        "app_domains": [inputs.origin],
        "valid_domains": [inputs.host],
        "taskpane_url": inputs.taskpane_url,
        "commands_url": inputs.commands_url,
        "requested_height": REQUESTED_HEIGHT,
        "desktop_icons": [{"size": px, "resid": image_resid(px)} for px in DESKTOP_SIZES],
        "mobile_icons": [
            {"size": icon["size"], "scale": icon["scale"], "resid": image_resid(icon["pixels"])}
            for icon in mobile_icons
        ],
        "images": [{"resid": image_resid(px), "url": icon_url(base, px)} for px in image_pixels],
        "client_id": inputs.client_id,
        "api_resource": inputs.api_resource,
        "scopes": SSO_SCOPES,
        "schema_url": UNIFIED_SCHEMA_URL,
        "manifest_version": UNIFIED_MANIFEST_VERSION,
        "unified_version": inputs.unified_version,
        "accent_color": ACCENT_COLOR,
        "color_icon": COLOR_ICON_IN_PACKAGE,
        "outline_icon": OUTLINE_ICON_IN_PACKAGE,
        "unified_icons": [{"size": px, "url": icon_url(base, px)} for px in UNIFIED_DESKTOP_SIZES],
        "unified_mobile_icons": [
            {"size": icon["size"], "url": icon_url(base, icon["pixels"]), "scale": icon["scale"]}
            for icon in mobile_icons
        ],
    }


def render_xml(inputs: ManifestInputs) -> bytes:
    """The add-in only manifest, UTF-8."""
    template = _environment().from_string(_template_source("manifest.xml.j2"))
    return template.render(template_context(inputs)).encode("utf-8")


def render_unified(inputs: ManifestInputs) -> bytes:
    """The unified manifest (``manifest.json``), UTF-8 with two-space indentation."""
    context = template_context(inputs)
    context["version"] = inputs.unified_version
    text = _environment().from_string(_template_source("manifest.json.j2")).render(context)
    return (json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
