"""Copy the MSAL.js browser bundle from ``node_modules`` into ``web/static/vendor/``.

Production task panes sign in with nested app authentication, which needs MSAL.js in the page.
A pip-installed service has no ``node_modules`` at run time, so the bundle is copied into the
package at build time (``make vendor``, before building the wheel or image) and served from this
service's own origin, which keeps the page's ``script-src`` at ``'self'`` plus Office.js. The
folder is git-ignored; when the bundle is absent, ``/api/v1/pane-config`` says so (``msal:
null``) and the pane signs in with ``Office.auth.getAccessToken`` instead.

Usage: ``python -m addin_service.web.vendor [--node-modules PATH]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from addin_service.web.assets import MSAL_BUNDLE, STATIC_ROOT

PACKAGE = "@azure/msal-browser"
BUNDLE_IN_PACKAGE = Path("lib/msal-browser.min.js")


def copy_msal(node_modules: Path, static_root: Path = STATIC_ROOT) -> Path:
    """Copy the bundle and its licence; return the bundle's new path.

    :raises FileNotFoundError: the npm package is not installed (run ``npm ci`` first).
    """
    package = node_modules / PACKAGE
    source = package / BUNDLE_IN_PACKAGE
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: run `npm ci` at the repository root first")
    version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    target = static_root / MSAL_BUNDLE
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    licence = package / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, target.parent / "msal-browser.LICENSE.txt")
    (target.parent / "msal-browser.VERSION.txt").write_text(f"{PACKAGE} {version}\n", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--node-modules", type=Path, default=Path("node_modules"))
    args = parser.parse_args(argv)
    try:
        target = copy_msal(args.node_modules)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"copied {PACKAGE} to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
