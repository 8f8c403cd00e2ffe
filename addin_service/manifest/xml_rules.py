"""Rule checks for the add-in only (XML) manifest, written for this project.

Microsoft's current XSDs for the add-in manifest are published only inside the MS-OWEMXML
protocol documents; the copies in public repositories are years old (they lack MobileFormFactor,
WebApplicationInfo and SupportsSharedFolders), so they are not used. Instead this module checks
the rules the Office validator enforces for the elements a mail add-in like this one uses:

* well-formed XML, no DTD; the right namespaces and ``xsi:type`` values;
* every element in the place and order its parent's schema sequence allows, with the right
  number of occurrences (an unknown element is an error, never ignored);
* GUIDs, versions, culture names, booleans, enumerations and numeric ranges;
* string lengths: short strings at most 125 characters, long strings 250, URLs 2048, resource
  ids 32;
* every URL is absolute ``https://``;
* resource ids are unique and every ``resid`` resolves to a resource of the right kind;
* control and group ids are unique within their VersionOverrides;
* icon sizes: 16, 32 and 80 present (20, 24, 40, 48, 64 allowed) on desktop; 25, 32 and 48
  at scale 1, 2 and 3 on mobile, each once;
* requirement sets: Mailbox declared, each VersionOverrides at least as strict as its parent;
* WebApplicationInfo: a GUID client id and an ``api://`` resource that ends with it.

:func:`check_xml` returns every problem found, so a build reports them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from addin_service.untrusted_numbers import decimal

NS_APP = "http://schemas.microsoft.com/office/appforoffice/1.1"
NS_BT = "http://schemas.microsoft.com/office/officeappbasictypes/1.0"
NS_VO = "http://schemas.microsoft.com/office/mailappversionoverrides"
NS_VO11 = "http://schemas.microsoft.com/office/mailappversionoverrides/1.1"
NS_VO12 = "http://schemas.microsoft.com/office/mailappversionoverrides/1.2"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_DSIG = "http://www.w3.org/2000/09/xmldsig#"
XSI_TYPE = f"{{{NS_XSI}}}type"

SHORT_STRING = 125
LONG_STRING = 250
URL_LENGTH = 2048
RESOURCE_ID = 32

DESKTOP_ICON_SIZES = frozenset({16, 20, 24, 32, 40, 48, 64, 80})
REQUIRED_DESKTOP_ICON_SIZES = frozenset({16, 32, 80})
MOBILE_ICON_SIZES = (25, 32, 48)
MOBILE_ICON_SCALES = (1, 2, 3)

_UUID = re.compile(
    r"^(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    r"|^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$"
)
_VERSION = re.compile(r"^[0-9]{1,5}(\.[0-9]{1,5}){0,3}$")
_SHORT_VERSION = re.compile(r"^[0-9]{1,5}\.[0-9]{1,5}$")
_CULTURE = re.compile(
    r"^([a-zA-Z]{2,3}-[a-zA-Z0-9]{3,8}(-[a-zA-Z]{2,3})?"
    r"|[a-zA-Z]{2,3}(-[a-zA-Z]{2,3}(_tradnl|\.pseudo|-[a-zA-Z]{4,8})?)?)$"
)
_BOOLEAN = {"true", "false", "1", "0"}

PERMISSIONS = ("Restricted", "ReadItem", "ReadWriteItem", "ReadWriteMailbox")
COMMAND_SURFACES = (
    "MessageReadCommandSurface",
    "MessageComposeCommandSurface",
    "AppointmentOrganizerCommandSurface",
    "AppointmentAttendeeCommandSurface",
)
MOBILE_SURFACES = ("MobileMessageReadCommandSurface",)

Model = list[tuple[str, int, int]]  # (Clark name, min, max) in schema order
UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class XmlExpectations:
    """What the manifest must say about this deployment (checked when given)."""

    app_id: str
    client_id: str
    api_resource: str
    taskpane_url: str
    origin: str
    icon_base_url: str  # e.g. https://host/static/icons/ : every icon must be one of ours
    icon_pixels: Callable[[str], int | None]  # file name -> pixel size of the shipped square PNG


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass
class _Scope:
    """One VersionOverrides: its resources and the references made inside it."""

    element: Any
    parent: _Scope | None = None
    resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"image": {}, "url": {}, "short": {}, "long": {}}
    )
    references: list[tuple[str, str, Any]] = field(default_factory=list)  # (kind, resid, element)
    ids: dict[str, Any] = field(default_factory=dict)
    image_sizes: list[tuple[str, int, int, Any]] = field(default_factory=list)  # resid, size, scale, el

    def resolve(self, kind: str, resid: str) -> str | None:
        scope: _Scope | None = self
        while scope is not None:
            if resid in scope.resources[kind]:
                return scope.resources[kind][resid]
            scope = scope.parent
        return None


class _Checker:
    def __init__(self, expect: XmlExpectations | None) -> None:
        self.expect = expect
        self.problems: list[str] = []
        self.scopes: list[_Scope] = []

    # --- helpers -------------------------------------------------------------------------------

    def fail(self, el: Any, message: str) -> None:
        line = getattr(el, "sourceline", None)
        where = f"line {line}: " if line else ""
        self.problems.append(f"{where}<{_local(el.tag)}> {message}")

    def sequence(self, el: Any, model: Model) -> dict[str, list[Any]]:
        """Children of ``el`` must follow ``model`` in order and number; returns them by name."""
        children = [c for c in el if isinstance(c.tag, str)]
        if (el.text or "").strip():
            self.fail(el, "must not contain text, only elements")
        for child in children:
            if (child.tail or "").strip():
                self.fail(child, "is followed by stray text")
        found: dict[str, list[Any]] = {name: [] for name, _, _ in model}
        i = 0
        for name, low, high in model:
            while i < len(children) and children[i].tag == name and len(found[name]) < high:
                found[name].append(children[i])
                i += 1
            if len(found[name]) < low:
                hint = " (missing or out of order)" if i < len(children) else ""
                self.fail(el, f"needs <{_local(name)}>{hint}")
        for extra in children[i:]:
            self.fail(extra, f"is not allowed inside <{_local(el.tag)}> here "
                             "(unknown, repeated or out of order)")
        return found

    def one(self, found: dict[str, list[Any]], name: str) -> Any | None:
        items = found.get(name) or []
        return items[0] if items else None

    def xsi_type(self, el: Any, allowed: Iterable[str]) -> str | None:
        value = el.get(XSI_TYPE)
        allowed = tuple(allowed)
        if value not in allowed:
            self.fail(el, f"needs xsi:type one of {', '.join(allowed)} (got {value!r})")
            return None
        return str(value)

    def no_attributes_but(self, el: Any, *names: str) -> None:
        for name in el.attrib:
            if name not in names and name != XSI_TYPE:
                self.fail(el, f"has an unknown attribute {_local(name)!r}")

    def text(self, el: Any, *, limit: int | None = None, pattern: re.Pattern[str] | None = None,
             what: str = "a value") -> str:
        if len(el):
            self.fail(el, "must contain text only")
        value = (el.text or "").strip()
        if not value:
            self.fail(el, f"must hold {what}")
        elif limit is not None and len(value) > limit:
            self.fail(el, f"is {len(value)} characters long; at most {limit} are allowed")
        elif pattern is not None and not pattern.match(value):
            self.fail(el, f"must hold {what} (got {value!r})")
        return value

    def attr(self, el: Any, name: str, *, limit: int | None = None, pattern: re.Pattern[str] | None = None,
             required: bool = True, what: str = "a value") -> str | None:
        value = el.get(name)
        if value is None:
            if required:
                self.fail(el, f"needs the {name} attribute")
            return None
        if not value.strip():
            self.fail(el, f"has an empty {name} attribute")
        elif limit is not None and len(value) > limit:
            self.fail(el, f"{name} is {len(value)} characters long; at most {limit} are allowed")
        elif pattern is not None and not pattern.match(value):
            self.fail(el, f"{name} must be {what} (got {value!r})")
        return str(value)

    def url(self, el: Any, value: str | None, what: str) -> None:
        if value is None:
            return
        if len(value) > URL_LENGTH:
            self.fail(el, f"{what} is longer than {URL_LENGTH} characters")
            return
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            self.fail(el, f"{what} must be an absolute https:// URL (got {value!r})")
        elif parts.username or parts.password:
            self.fail(el, f"{what} must not carry credentials")

    def boolean(self, el: Any) -> None:
        value = self.text(el, what="true or false")
        if value and value not in _BOOLEAN:
            self.fail(el, f"must be true or false (got {value!r})")

    def locale_setting(self, el: Any, kind: str) -> None:
        """DisplayName, Description, IconUrl...: DefaultValue plus optional per-locale Overrides."""
        found = self.sequence(el, [(_q(NS_APP, "Override"), 0, UNBOUNDED)])
        self.no_attributes_but(el, "DefaultValue")
        values = [self.attr(el, "DefaultValue", limit=self._limit(kind))]
        for override in found[_q(NS_APP, "Override")]:
            self.no_attributes_but(override, "Locale", "Value")
            self.attr(override, "Locale", pattern=_CULTURE, what="a culture name such as en-US")
            values.append(self.attr(override, "Value", limit=self._limit(kind)))
        if kind == "url":
            for value in values:
                self.url(el, value, "the URL")

    @staticmethod
    def _limit(kind: str) -> int:
        return {"short": SHORT_STRING, "long": LONG_STRING, "url": URL_LENGTH}[kind]

    # --- the base manifest ---------------------------------------------------------------------

    def office_app(self, root: Any) -> None:
        if root.tag != _q(NS_APP, "OfficeApp"):
            self.fail(root, f"must be the root <OfficeApp> in namespace {NS_APP}")
            return
        if self.xsi_type(root, ["MailApp"]) is None:
            return
        a = partial(_q, NS_APP)
        found = self.sequence(root, [
            (a("Id"), 1, 1), (a("AlternateId"), 0, 1), (a("Version"), 1, 1), (a("ProviderName"), 1, 1),
            (a("DefaultLocale"), 1, 1), (a("DisplayName"), 1, 1), (a("Description"), 1, 1),
            (a("IconUrl"), 0, 1), (a("HighResolutionIconUrl"), 0, 1), (a("SupportUrl"), 0, 1),
            (a("AppDomains"), 0, 1), (a("Hosts"), 0, 1), (a("Requirements"), 1, 1), (a("FormSettings"), 1, 1),
            (a("Permissions"), 0, 1), (a("Rule"), 1, 1), (a("DisableEntityHighlighting"), 0, 1),
            (_q(NS_VO, "VersionOverrides"), 0, 1), (_q(NS_DSIG, "Signature"), 0, 1),
        ])
        if (el := self.one(found, a("Id"))) is not None:
            value = self.text(el, pattern=_UUID, what="a GUID")
            if self.expect and value and value.lower() != self.expect.app_id:
                self.fail(el, f"must be the add-in id {self.expect.app_id}")
        if (el := self.one(found, a("Version"))) is not None:
            self.text(el, pattern=_VERSION, what="one to four numbers of up to five digits, such as 1.0.0.0")
        if (el := self.one(found, a("ProviderName"))) is not None:
            self.text(el, limit=SHORT_STRING, what="the provider's name")
        if (el := self.one(found, a("DefaultLocale"))) is not None:
            self.text(el, pattern=_CULTURE, what="a culture name such as en-US")
        for name, kind in (("DisplayName", "short"), ("Description", "long"), ("IconUrl", "url"),
                           ("HighResolutionIconUrl", "url"), ("SupportUrl", "url")):
            if (el := self.one(found, a(name))) is not None:
                self.locale_setting(el, kind)
        for name, pixels in (("IconUrl", 64), ("HighResolutionIconUrl", 128)):
            if (el := self.one(found, a(name))) is not None:
                self.icon_file(el, el.get("DefaultValue"), pixels)
        if (el := self.one(found, a("AppDomains"))) is not None:
            domains = self.sequence(el, [(a("AppDomain"), 1, UNBOUNDED)])[a("AppDomain")]
            what = "a domain such as https://contoso.com"
            values = [self.text(d, limit=LONG_STRING, what=what) for d in domains]
            for domain, value in zip(domains, values, strict=True):
                self.url(domain, value, "the app domain")
            if self.expect and self.expect.origin not in values:
                self.fail(el, f"must list the service's origin {self.expect.origin}")
        if (el := self.one(found, a("Hosts"))) is not None:
            for host in self.sequence(el, [(a("Host"), 1, UNBOUNDED)])[a("Host")]:
                if self.attr(host, "Name") != "Mailbox":
                    self.fail(host, "of a mail add-in must be Name=\"Mailbox\"")
        base_version = None
        if (el := self.one(found, a("Requirements"))) is not None:
            base_version = self.requirements(el, NS_APP)
        if (el := self.one(found, a("FormSettings"))) is not None:
            self.form_settings(el)
        if (el := self.one(found, a("Permissions"))) is not None:
            value = self.text(el, what="a permission")
            if value and value not in PERMISSIONS:
                self.fail(el, f"must be one of {', '.join(PERMISSIONS)} (got {value!r})")
        if (el := self.one(found, a("Rule"))) is not None:
            self.rule(el)
        if (el := self.one(found, a("DisableEntityHighlighting"))) is not None:
            self.boolean(el)
        if (el := self.one(found, _q(NS_VO, "VersionOverrides"))) is not None:
            self.version_overrides(el, NS_VO, "VersionOverridesV1_0", None, base_version)

    def requirements(self, el: Any, ns: str) -> tuple[int, int] | None:
        """<Requirements><Sets><Set Name="Mailbox" MinVersion=.../></Sets></Requirements>."""
        sets_el = self.one(self.sequence(el, [(_q(ns, "Sets"), 1, 1)]), _q(ns, "Sets"))
        if sets_el is None:
            return None
        self.no_attributes_but(sets_el, "DefaultMinVersion")
        default = self.attr(sets_el, "DefaultMinVersion", pattern=_SHORT_VERSION, required=False,
                            what="a version such as 1.3") or "1.1"
        mailbox: tuple[int, int] | None = None
        for set_el in self.sequence(sets_el, [(_q(ns, "Set"), 1, UNBOUNDED)])[_q(ns, "Set")]:
            self.no_attributes_but(set_el, "Name", "MinVersion")
            name = self.attr(set_el, "Name", limit=SHORT_STRING)
            version = self.attr(set_el, "MinVersion", pattern=_SHORT_VERSION, required=False,
                                what="a version such as 1.3") or default
            if name == "Mailbox" and _SHORT_VERSION.match(version):
                major, minor = version.split(".")
                mailbox = (int(major), int(minor))
        if mailbox is None:
            self.fail(el, "must require the Mailbox requirement set")
        return mailbox

    def form_settings(self, el: Any) -> None:
        a = partial(_q, NS_APP)
        for form in self.sequence(el, [(a("Form"), 1, 2)])[a("Form")]:
            kind = self.xsi_type(form, ["ItemRead", "ItemEdit"])
            if kind is None:
                continue
            found = self.sequence(form, [(a("DesktopSettings"), 1, 1), (a("TabletSettings"), 0, 1),
                                         (a("PhoneSettings"), 0, 1)])
            for name in ("DesktopSettings", "TabletSettings", "PhoneSettings"):
                settings = self.one(found, a(name))
                if settings is None:
                    continue
                with_height = kind == "ItemRead" and name != "PhoneSettings"
                model: Model = [(a("SourceLocation"), 1, 1)]
                if with_height:
                    model.append((a("RequestedHeight"), 1, 1))
                parts = self.sequence(settings, model)
                if (source := self.one(parts, a("SourceLocation"))) is not None:
                    self.locale_setting(source, "url")
                    expected = self.expect.taskpane_url if self.expect else None
                    if expected and name == "DesktopSettings" and source.get("DefaultValue") != expected:
                        self.fail(source, f"must be the task pane {expected}")
                if (height := self.one(parts, a("RequestedHeight"))) is not None:
                    value = self.text(height, pattern=re.compile(r"^[0-9]+$"), what="a height in pixels")
                    if (pixels := decimal(value)) is not None and not 32 <= pixels <= 450:
                        self.fail(height, f"must be between 32 and 450 (got {value})")

    def rule(self, el: Any) -> None:
        kind = self.xsi_type(el, ["ItemIs", "RuleCollection"])
        if kind == "ItemIs":
            self.sequence(el, [])
            self.no_attributes_but(el, "ItemType", "FormType", "ItemClass", "IncludeSubClasses")
            if self.attr(el, "ItemType") not in (None, "Message", "Appointment"):
                self.fail(el, "ItemType must be Message or Appointment")
            if self.attr(el, "FormType") not in (None, "Read", "Edit", "ReadOrEdit"):
                self.fail(el, "FormType must be Read, Edit or ReadOrEdit")
        elif kind == "RuleCollection":
            self.no_attributes_but(el, "Mode")
            if self.attr(el, "Mode") not in (None, "And", "Or"):
                self.fail(el, "Mode must be And or Or")
            for child in self.sequence(el, [(_q(NS_APP, "Rule"), 1, UNBOUNDED)])[_q(NS_APP, "Rule")]:
                self.rule(child)

    # --- VersionOverrides ----------------------------------------------------------------------

    def version_overrides(self, el: Any, ns: str, xsi: str, parent: _Scope | None,
                          parent_version: tuple[int, int] | None) -> None:
        if self.xsi_type(el, [xsi]) is None:
            return
        scope = _Scope(el, parent)
        self.scopes.append(scope)
        v = partial(_q, ns)
        is_1_1 = ns == NS_VO11
        model: Model = [(v("Description"), 0, 1), (v("Requirements"), 0, 1), (v("Hosts"), 0, 1),
                        (v("Resources"), 0, 1)]
        model += [(v("WebApplicationInfo"), 0, 1), (_q(NS_VO12, "VersionOverrides"), 0, 1)] if is_1_1 \
            else [(_q(NS_VO11, "VersionOverrides"), 0, 1)]
        found = self.sequence(el, model)
        # Resources first: every reference below resolves against them.
        if (res := self.one(found, v("Resources"))) is not None:
            self.resources(res, scope)
        if (desc := self.one(found, v("Description"))) is not None:
            self.reference(desc, scope, "long")
        version = parent_version
        if (req := self.one(found, v("Requirements"))) is not None:
            version = self.requirements(req, NS_BT)
            if version and parent_version and version < parent_version:
                mine, theirs = ".".join(map(str, version)), ".".join(map(str, parent_version))
                self.fail(req, f"must be at least as strict as its parent's (Mailbox {mine} < {theirs})")
        if (hosts := self.one(found, v("Hosts"))) is not None:
            for host in self.sequence(hosts, [(v("Host"), 1, UNBOUNDED)])[v("Host")]:
                self.mail_host(host, ns, scope)
        if (info := self.one(found, v("WebApplicationInfo"))) is not None:
            self.web_application_info(info, ns)
        if not is_1_1 and (inner := self.one(found, _q(NS_VO11, "VersionOverrides"))) is not None:
            self.version_overrides(inner, NS_VO11, "VersionOverridesV1_1", scope, version)
        self.resolve(scope)

    def mail_host(self, el: Any, ns: str, scope: _Scope) -> None:
        if self.xsi_type(el, ["MailHost"]) is None:
            return
        v = partial(_q, ns)
        model: Model = [(v("DesktopFormFactor"), 0, 1)]
        if ns == NS_VO11:
            model.append((v("MobileFormFactor"), 0, 1))
        found = self.sequence(el, model)
        if (desktop := self.one(found, v("DesktopFormFactor"))) is not None:
            self.form_factor(desktop, ns, scope, mobile=False)
        if (mobile := self.one(found, v("MobileFormFactor"))) is not None:
            self.form_factor(mobile, ns, scope, mobile=True)

    def form_factor(self, el: Any, ns: str, scope: _Scope, *, mobile: bool) -> None:
        v = partial(_q, ns)
        model: Model = []
        if ns == NS_VO11 and not mobile:
            model.append((v("SupportsSharedFolders"), 0, 1))
        model += [(v("FunctionFile"), 1 if mobile else 0, 1), (v("ExtensionPoint"), 1, UNBOUNDED)]
        found = self.sequence(el, model)
        if (shared := self.one(found, v("SupportsSharedFolders"))) is not None:
            self.boolean(shared)
        if (function_file := self.one(found, v("FunctionFile"))) is not None:
            self.reference(function_file, scope, "url")
        for point in found[v("ExtensionPoint")]:
            if mobile:
                if self.xsi_type(point, MOBILE_SURFACES) is not None:
                    group = self.one(self.sequence(point, [(v("Group"), 1, 1)]), v("Group"))
                    if group is not None:
                        self.group(group, ns, scope, mobile=True)
            elif self.xsi_type(point, COMMAND_SURFACES) is not None:
                tabs = self.sequence(point, [(v("OfficeTab"), 0, UNBOUNDED), (v("CustomTab"), 0, UNBOUNDED)])
                if not tabs[v("OfficeTab")] and not tabs[v("CustomTab")]:
                    self.fail(point, "needs an <OfficeTab> or a <CustomTab>")
                for tab in tabs[v("OfficeTab")]:
                    if self.attr(tab, "id") != "TabDefault":
                        self.fail(tab, "id must be TabDefault in Outlook")
                    for group in self.sequence(tab, [(v("Group"), 1, UNBOUNDED)])[v("Group")]:
                        self.group(group, ns, scope, mobile=False)
                for tab in tabs[v("CustomTab")]:
                    self.unique_id(tab, scope)
                    parts = self.sequence(tab, [(v("Group"), 1, UNBOUNDED), (v("Label"), 1, 1)])
                    for group in parts[v("Group")]:
                        self.group(group, ns, scope, mobile=False)
                    if (label := self.one(parts, v("Label"))) is not None:
                        self.reference(label, scope, "short")

    def unique_id(self, el: Any, scope: _Scope) -> None:
        value = self.attr(el, "id", limit=SHORT_STRING)
        if value is None:
            return
        if value in scope.ids:
            self.fail(el, f"id {value!r} is used twice in the same VersionOverrides")
        scope.ids[value] = el

    def group(self, el: Any, ns: str, scope: _Scope, *, mobile: bool) -> None:
        v = partial(_q, ns)
        self.unique_id(el, scope)
        model: Model = [(v("Label"), 1, 1)]
        if ns == NS_VO11 and not mobile:
            model.append((v("Tooltip"), 0, 1))
        model.append((v("Control"), 1, UNBOUNDED))
        found = self.sequence(el, model)
        if (label := self.one(found, v("Label"))) is not None:
            self.reference(label, scope, "short")
        if (tooltip := self.one(found, v("Tooltip"))) is not None:
            self.reference(tooltip, scope, "short")
        for control in found[v("Control")]:
            self.control(control, ns, scope, mobile=mobile)

    def control(self, el: Any, ns: str, scope: _Scope, *, mobile: bool) -> None:
        v = partial(_q, ns)
        kind = self.xsi_type(el, ["MobileButton"] if mobile else ["Button", "Menu"])
        if kind is None:
            return
        self.unique_id(el, scope)
        if mobile:
            found = self.sequence(el, [(v("Label"), 1, 1), (v("Icon"), 1, 1), (v("Action"), 1, 1)])
        else:
            last = (v("Action"), 1, 1) if kind == "Button" else (v("Items"), 1, 1)
            model: Model = [(v("Label"), 1, 1)]
            if ns == NS_VO11:
                model.append((v("Tooltip"), 0, 1))
            found = self.sequence(el, [*model, (v("Supertip"), 1, 1), (v("Icon"), 1, 1), last])
        if (label := self.one(found, v("Label"))) is not None:
            self.reference(label, scope, "short")
        if (supertip := self.one(found, v("Supertip"))) is not None:
            parts = self.sequence(supertip, [(v("Title"), 1, 1), (v("Description"), 1, 1)])
            if (title := self.one(parts, v("Title"))) is not None:
                self.reference(title, scope, "short")
            if (description := self.one(parts, v("Description"))) is not None:
                self.reference(description, scope, "long")
        if (icon := self.one(found, v("Icon"))) is not None:
            self.icon(icon, scope, mobile=mobile)
        if (action := self.one(found, v("Action"))) is not None:
            self.action(action, ns, scope)
        if (items := self.one(found, v("Items"))) is not None:
            for item in self.sequence(items, [(v("Item"), 1, UNBOUNDED)])[v("Item")]:
                self.unique_id(item, scope)
                parts = self.sequence(item, [(v("Label"), 1, 1), (v("Supertip"), 1, 1), (v("Icon"), 0, 1),
                                             (v("Action"), 1, 1)])
                if (label := self.one(parts, v("Label"))) is not None:
                    self.reference(label, scope, "short")
                if (icon := self.one(parts, v("Icon"))) is not None:
                    self.icon(icon, scope, mobile=False)
                if (action := self.one(parts, v("Action"))) is not None:
                    self.action(action, ns, scope)

    def action(self, el: Any, ns: str, scope: _Scope) -> None:
        v = partial(_q, ns)
        kind = self.xsi_type(el, ["ShowTaskpane", "ExecuteFunction"])
        if kind == "ShowTaskpane":
            model: Model = [(v("SourceLocation"), 1, 1)]
            if ns == NS_VO11:
                model.append((v("SupportsPinning"), 0, 1))
            found = self.sequence(el, model)
            if (source := self.one(found, v("SourceLocation"))) is not None:
                url = self.reference(source, scope, "url")
                if self.expect and url is not None and url != self.expect.taskpane_url:
                    self.fail(source, f"must open the task pane {self.expect.taskpane_url}")
            if (pinning := self.one(found, v("SupportsPinning"))) is not None:
                self.boolean(pinning)
        elif kind == "ExecuteFunction":
            found = self.sequence(el, [(v("FunctionName"), 1, 1)])
            if (name := self.one(found, v("FunctionName"))) is not None:
                self.text(name, limit=LONG_STRING, what="a function name")

    def icon(self, el: Any, scope: _Scope, *, mobile: bool) -> None:
        bt_image = _q(NS_BT, "Image")
        images = self.sequence(el, [(bt_image, 1, UNBOUNDED)])[bt_image]
        if mobile:
            if el.get(XSI_TYPE) != "bt:MobileIconList" or el.nsmap.get("bt") != NS_BT:
                self.fail(el, "in a MobileFormFactor needs xsi:type=\"bt:MobileIconList\"")
            seen: set[tuple[int, int]] = set()
            for image in images:
                self.no_attributes_but(image, "size", "scale", "resid")
                size, scale = self.int_attr(image, "size"), self.int_attr(image, "scale")
                if size is None or scale is None:
                    continue
                if size not in MOBILE_ICON_SIZES or scale not in MOBILE_ICON_SCALES:
                    self.fail(image, f"size {size} at scale {scale} is not a mobile icon size "
                                     "(25, 32 or 48 at scale 1, 2 or 3)")
                if (size, scale) in seen:
                    self.fail(image, f"size {size} at scale {scale} appears twice")
                seen.add((size, scale))
                self.reference(image, scope, "image")
                scope.image_sizes.append((image.get("resid") or "", size, scale, image))
            missing = {(s, k) for s in MOBILE_ICON_SIZES for k in MOBILE_ICON_SCALES} - seen
            if missing:
                listed = ", ".join(f"{s}@{k}x" for s, k in sorted(missing))
                self.fail(el, f"misses mobile icons {listed}")
        else:
            if el.get(XSI_TYPE) is not None:
                self.fail(el, "of a desktop control takes no xsi:type")
            sizes: list[int] = []
            for image in images:
                self.no_attributes_but(image, "size", "resid")
                size = self.int_attr(image, "size")
                if size is None:
                    continue
                if size not in DESKTOP_ICON_SIZES:
                    allowed = ", ".join(map(str, sorted(DESKTOP_ICON_SIZES)))
                    self.fail(image, f"size {size} is not a ribbon icon size ({allowed})")
                if size in sizes:
                    self.fail(image, f"size {size} appears twice")
                sizes.append(size)
                self.reference(image, scope, "image")
                scope.image_sizes.append((image.get("resid") or "", size, 1, image))
            missing_sizes = REQUIRED_DESKTOP_ICON_SIZES - set(sizes)
            if missing_sizes:
                self.fail(el, f"needs icons of size {', '.join(map(str, sorted(missing_sizes)))}")

    def int_attr(self, el: Any, name: str) -> int | None:
        value = self.attr(el, name, pattern=re.compile(r"^[0-9]+$"), what="a whole number")
        return decimal(value)

    def reference(self, el: Any, scope: _Scope, kind: str) -> str | None:
        """Record a ``resid`` reference; returns the resource's value when it resolves (else None)."""
        if kind != "image":
            self.no_attributes_but(el, "resid")
        self.sequence(el, [])
        resid = self.attr(el, "resid", limit=RESOURCE_ID)
        if resid is None:
            return None
        scope.references.append((kind, resid, el))
        return scope.resolve(kind, resid)

    def resources(self, el: Any, scope: _Scope) -> None:
        b = partial(_q, NS_BT)
        found = self.sequence(el, [(b("Images"), 0, 1), (b("Urls"), 0, 1), (b("ShortStrings"), 0, 1),
                                   (b("LongStrings"), 0, 1)])
        seen: set[str] = set()
        for group, item, kind in (("Images", "Image", "image"), ("Urls", "Url", "url"),
                                  ("ShortStrings", "String", "short"), ("LongStrings", "String", "long")):
            container = self.one(found, b(group))
            if container is None:
                continue
            for entry in self.sequence(container, [(b(item), 0, UNBOUNDED)])[b(item)]:
                overrides = self.sequence(entry, [(b("Override"), 0, UNBOUNDED)])[b("Override")]
                self.no_attributes_but(entry, "id", "DefaultValue")
                resid = self.attr(entry, "id", limit=RESOURCE_ID)
                limit = URL_LENGTH if kind in ("image", "url") else self._limit(kind)
                value = self.attr(entry, "DefaultValue", limit=limit)
                values = [value]
                for override in overrides:
                    self.no_attributes_but(override, "Locale", "Value")
                    self.attr(override, "Locale", pattern=_CULTURE, what="a culture name such as en-US")
                    values.append(self.attr(override, "Value", limit=limit))
                if kind in ("image", "url"):
                    for each in values:
                        self.url(entry, each, "the resource URL")
                if resid is None:
                    continue
                if resid in seen:
                    self.fail(entry, f"id {resid!r} is used by more than one resource")
                seen.add(resid)
                scope.resources[kind][resid] = value or ""

    def web_application_info(self, el: Any, ns: str) -> None:
        v = partial(_q, ns)
        found = self.sequence(el, [(v("Id"), 1, 1), (v("Resource"), 1, 1), (v("Scopes"), 0, 1)])
        client = None
        if (id_el := self.one(found, v("Id"))) is not None:
            client = self.text(id_el, pattern=_UUID, what="the Entra ID application (client) id, a GUID")
            if self.expect and client and client.lower() != self.expect.client_id:
                self.fail(id_el, f"must be the client id {self.expect.client_id}")
        if (resource := self.one(found, v("Resource"))) is not None:
            value = self.text(resource, limit=LONG_STRING, what="the application ID URI")
            ends_with_client = not client or value.lower().endswith("/" + client.lower())
            if value and (not value.startswith("api://") or not ends_with_client):
                self.fail(resource, "must be the application ID URI api://<host>/<client id>")
            if self.expect and value and value != self.expect.api_resource:
                self.fail(resource, f"must be {self.expect.api_resource}")
        if (scopes := self.one(found, v("Scopes"))) is not None:
            for scope_el in self.sequence(scopes, [(v("Scope"), 1, UNBOUNDED)])[v("Scope")]:
                self.text(scope_el, limit=LONG_STRING, what="a scope such as openid")

    # --- cross-checks --------------------------------------------------------------------------

    def resolve(self, scope: _Scope) -> None:
        names = {"image": "bt:Images", "url": "bt:Urls", "short": "bt:ShortStrings", "long": "bt:LongStrings"}
        for kind, resid, el in scope.references:
            if scope.resolve(kind, resid) is None:
                self.fail(el, f"refers to resid {resid!r}, which is not in {names[kind]} of its Resources")
        for resid, size, scale, el in scope.image_sizes:
            url = scope.resolve("image", resid)
            if url is not None:
                self.icon_file(el, url, size * scale)

    def icon_file(self, el: Any, url: str | None, pixels: int) -> None:
        """The icon must be one the service ships, with the pixel size the manifest claims."""
        if self.expect is None or url is None:
            return
        base = self.expect.icon_base_url
        if not url.startswith(base):
            self.fail(el, f"points to {url}, which is not one of the service's icons under {base}")
            return
        actual = self.expect.icon_pixels(url[len(base):])
        if actual is None:
            self.fail(el, f"points to {url}, but the service has no such icon")
        elif actual != pixels:
            self.fail(el, f"needs a {pixels}x{pixels} image, but {url} is {actual}x{actual}")


def parse_xml(data: bytes) -> Any:
    """Parse without DTDs, entities or network access.

    :raises ValueError: not well-formed, or carrying a DOCTYPE.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)  # noqa: S320 - hardened parser, no DTD or entities
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"the XML is not well-formed: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise ValueError("the XML must not carry a DOCTYPE")
    return root


def check_xml(data: bytes, expect: XmlExpectations | None = None) -> list[str]:
    """Every rule the add-in only manifest breaks (empty when it is valid)."""
    try:
        root = parse_xml(data)
    except ValueError as exc:
        return [str(exc)]
    checker = _Checker(expect)
    checker.office_app(root)
    return checker.problems
