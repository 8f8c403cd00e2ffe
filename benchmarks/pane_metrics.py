"""Task pane metrics, printed as JSON: its own JS+CSS size and time from pane open to interactive.

Each number is given with a baseline from the same run:

* size: the pane's own ``taskpane.js`` + ``taskpane.css`` (libraries such as Office.js and MSAL
  aside), raw and gzipped, as a ratio of the 60 KB budget;
* time: from the pane's navigation start to ``performance.mark("pane-interactive")`` (the form is
  filled in and usable), as a ratio of the same load's ``DOMContentLoaded``: how much the pane's
  own start-up (Office ready, pane-config, rendering) adds to merely loading the page.

The pane is opened from the demo Outlook page in Debian's chromium, ``--runs`` times, against the
service on 127.0.0.1 with the in-memory mailbox (see ``tests/e2e/harness.py``). With
``--screenshot PATH`` it also writes a picture of the pane's form and receipt side by side.

Run from the repository root: ``.venv/bin/python -m benchmarks.pane_metrics [--runs 7]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

from addin_service.web.assets import STATIC_ROOT
from tests.e2e import chromium
from tests.e2e.harness import LiveService, live_service
from tests.e2e.outlook import DemoOutlook

BUDGET_BYTES = 60 * 1024
PANE_FILES = ("taskpane.js", "taskpane.css")
CONTENT_BOTTOM = "Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)"


def pane_size() -> dict[str, Any]:
    files = {name: (STATIC_ROOT / name).read_bytes() for name in PANE_FILES}
    raw = sum(len(data) for data in files.values())
    gzipped = sum(len(gzip.compress(data, 9)) for data in files.values())
    return {
        "files": {name: len(data) for name, data in files.items()},
        "bytes": raw,
        "gzip_bytes": gzipped,
        "budget_bytes": BUDGET_BYTES,
        "ratio_to_budget": round(raw / BUDGET_BYTES, 3),
    }


def time_to_interactive(browser: Browser, live: LiveService, runs: int) -> dict[str, Any]:
    interactive: list[float] = []
    dom_ready: list[float] = []
    for _ in range(runs):
        context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
        try:
            outlook = DemoOutlook(context.new_page(), live)
            pane = outlook.open_pane("You will regret this")
            interactive.append(pane.mark("pane-interactive"))
            dom_ready.append(
                float(pane.frame.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))
            )
        finally:
            context.close()
    median_interactive = statistics.median(interactive)
    median_dom = statistics.median(dom_ready)
    return {
        "runs": runs,
        "median_ms": round(median_interactive, 1),
        "min_ms": round(min(interactive), 1),
        "max_ms": round(max(interactive), 1),
        "baseline": "DOMContentLoaded of the same pane load",
        "baseline_median_ms": round(median_dom, 1),
        "ratio_to_baseline": round(median_interactive / median_dom, 2) if median_dom else None,
    }


def screenshot(browser: Browser, live: LiveService, path: Path) -> None:
    """The pane's form and its receipt side by side, at the demo's pane width (22rem)."""
    from PIL import Image

    context = browser.new_context(
        base_url=live.url,
        viewport={"width": 1280, "height": 1900},
        device_scale_factor=1,
        locale="en-US",
        timezone_id="UTC",
    )
    try:
        page = context.new_page()
        pane = DemoOutlook(page, live).open_pane("You will regret this")
        frame_box = page.locator("#taskpane-frame")
        pane.fill("Threat or violence", note="He waited by my car on Monday and sent this the same night.")
        pane.feels_unsafe.check()
        with tempfile.TemporaryDirectory() as tmp:
            form, receipt = Path(tmp) / "form.png", Path(tmp) / "receipt.png"
            frame_box.screenshot(path=str(form))
            form_height = int(pane.frame.evaluate(CONTENT_BOTTOM))
            pane.report()
            pane.receipt_heading.wait_for()
            pane.frame.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
            frame_box.screenshot(path=str(receipt))
            receipt_height = int(pane.frame.evaluate(CONTENT_BOTTOM))
            images = []
            for shot, content_height in ((form, form_height), (receipt, receipt_height)):
                image = Image.open(shot).convert("RGB")
                images.append(image.crop((0, 0, image.width, min(image.height, content_height))))
        gap = 24
        width = sum(image.width for image in images) + gap * (len(images) + 1)
        height = max(image.height for image in images) + 2 * gap
        sheet = Image.new("RGB", (width, height), (226, 231, 236))
        x = gap
        for image in images:
            sheet.paste(image, (x, gap))
            x += image.width + gap
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path, optimize=True)
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the task pane.")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--screenshot", type=Path, help="also write the form and receipt picture here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data, live_service(Path(data)) as live, sync_playwright() as playwright:
        browser = chromium.launch(playwright)
        try:
            result = {
                "pane_size": pane_size(),
                "pane_open_to_interactive": time_to_interactive(browser, live, args.runs),
            }
            if args.screenshot:
                screenshot(browser, live, args.screenshot)
                result["screenshot"] = str(args.screenshot)
        finally:
            browser.close()
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
