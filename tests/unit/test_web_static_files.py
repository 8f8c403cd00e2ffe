"""The front end's source obeys the house rules: no HTML from strings, no inline code, small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from addin_service.web.assets import STATIC_ROOT

WEB = STATIC_ROOT.parent
OWN_SCRIPTS = sorted(p for p in STATIC_ROOT.rglob("*.js") if "vendor" not in p.parts)
TEMPLATES = sorted((WEB / "templates").rglob("*.html"))
PANE_BUDGET = 60 * 1024

# Ways to turn a string into markup or code. Message values must only ever reach textContent.
FORBIDDEN_JS = {
    "innerHTML": re.compile(r"\binnerHTML\b"),
    "outerHTML": re.compile(r"\bouterHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\.write(ln)?\s*\("),
    "eval": re.compile(r"(?<![.\w])eval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\s*\("),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*[\"'`]"),
    "createContextualFragment": re.compile(r"\bcreateContextualFragment\b"),
}


def test_there_are_scripts_and_templates_to_check() -> None:
    names = {p.relative_to(STATIC_ROOT).as_posix() for p in OWN_SCRIPTS}
    assert {"taskpane.js", "demo/office-sim.js", "demo/outlook.js"} <= names
    assert {p.name for p in TEMPLATES} >= {"taskpane.html", "outlook.html"}


@pytest.mark.parametrize("script", OWN_SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_build_markup_or_code_from_strings(script: Path) -> None:
    source = script.read_text(encoding="utf-8")

    found = [name for name, pattern in FORBIDDEN_JS.items() if pattern.search(source)]

    assert found == []


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_inline_script_style_or_handlers(template: Path) -> None:
    html = template.read_text(encoding="utf-8")

    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert re.findall(r"\sstyle\s*=", html) == []
    assert re.findall(r"\son[a-z]+\s*=", html) == []
    assert "javascript:" not in html
    assert "|safe" not in html and "Markup(" not in html


def test_pane_own_javascript_and_css_fit_the_budget() -> None:
    size = sum((STATIC_ROOT / name).stat().st_size for name in ("taskpane.js", "taskpane.css"))

    assert size <= PANE_BUDGET


def test_every_pane_id_the_script_uses_exists_in_the_template() -> None:
    script = (STATIC_ROOT / "taskpane.js").read_text(encoding="utf-8")
    html = (WEB / "templates" / "taskpane.html").read_text(encoding="utf-8")
    used = set(re.findall(r'\$\("([a-z0-9-]+)"\)', script))
    declared = set(re.findall(r'\bid="([a-z0-9-]+)"', html))

    assert used
    assert used - declared == set()
