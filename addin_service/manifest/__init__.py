"""The Outlook add-in manifests: rendered from templates, checked, and written by ``manifest build``.

Import :func:`build_manifests` to build from code, or attach :data:`manifest_cli` to a click group.
Nothing here runs at import time.
"""

from __future__ import annotations

from addin_service.manifest.builder import BuiltManifests, build_manifests
from addin_service.manifest.cli import manifest_cli
from addin_service.manifest.errors import ManifestError, ManifestInputError, ManifestInvalid

__all__ = [
    "BuiltManifests",
    "ManifestError",
    "ManifestInputError",
    "ManifestInvalid",
    "build_manifests",
    "manifest_cli",
]
