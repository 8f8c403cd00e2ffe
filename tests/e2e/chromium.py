"""Debian's chromium, launched the one way every browser test and benchmark uses it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Playwright

EXECUTABLE = "/usr/bin/chromium"
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def launch(playwright: Playwright) -> Browser:
    """Start chromium. :raises FileNotFoundError: it is not installed (``apt-get install chromium``)."""
    if not Path(EXECUTABLE).exists():
        raise FileNotFoundError(f"{EXECUTABLE} is missing: install Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=EXECUTABLE, args=list(ARGS), headless=True)
