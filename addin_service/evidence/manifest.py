"""``manifest.json``: what a package holds, where it sits in the ledger, and a signature over both.

The signature is Ed25519 over the canonical JSON (sorted keys, no spaces, UTF-8) of the manifest
without its ``signature`` member; the file itself is pretty-printed JSON with sorted keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from addin_service.evidence import signing
from addin_service.evidence.canonical import canonical_json, is_sha256_tag
from addin_service.evidence.fsio import FileDigest
from addin_service.evidence.keys import Signer
from addin_service.evidence.layout import PAYLOAD_FILES
from addin_service.evidence.ledger import LedgerEntry

FORMAT = 1


def build_manifest(
    *,
    case_id: str,
    report_id: str,
    created_at: str,
    files: Mapping[str, FileDigest],
    sequence: int,
    previous_hash: str | None,
    signer: Signer,
) -> dict[str, Any]:
    """The signed manifest for a package about to take ledger position ``sequence``."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "case_id": case_id,
        "report_id": report_id,
        "created_at": created_at,
        "files": {name: {"sha256": files[name].sha256, "size": files[name].size} for name in PAYLOAD_FILES},
        "ledger": {"sequence": sequence, "previous_hash": previous_hash},
    }
    manifest["signature"] = {
        "alg": signing.ALGORITHM,
        "key": signer.fingerprint,
        "value": signer.sign(signed_bytes(manifest)),
    }
    return manifest


def signed_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the manifest signature covers: canonical JSON without ``signature``."""
    return canonical_json({name: value for name, value in manifest.items() if name != "signature"})


def encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes of ``manifest.json``: sorted keys, indent 2, UTF-8, final newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def check_manifest(
    data: bytes, entry: LedgerEntry, key: Ed25519PublicKey | None
) -> tuple[dict[str, FileDigest], list[str]]:
    """Check a stored manifest against its ledger entry and the public key.

    Returns the files it lists (for the caller to compare with the disk) and the problems
    found, each a sentence; no problems means the manifest is genuine and belongs to ``entry``.
    """
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}, ["manifest.json is not valid JSON"]
    if not isinstance(manifest, dict):
        return {}, ["manifest.json is not a JSON object"]
    problems: list[str] = []
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest.json format is {manifest.get('format')!r}, expected {FORMAT}")
    if manifest.get("case_id") != entry.case_id or manifest.get("report_id") != entry.report_id:
        problems.append("manifest.json names a different case or report than its ledger entry")
    if manifest.get("ledger") != {"sequence": entry.sequence, "previous_hash": entry.previous_hash}:
        problems.append("manifest.json names a different ledger position than its ledger entry")
    if not isinstance(manifest.get("created_at"), str):
        problems.append("manifest.json has no created_at time")
    files, file_problems = _listed_files(manifest.get("files"))
    problems.extend(file_problems)
    problems.extend(_signature_problems(manifest, key))
    return files, problems


def _listed_files(listed: object) -> tuple[dict[str, FileDigest], list[str]]:
    if not isinstance(listed, dict) or set(listed) != set(PAYLOAD_FILES):
        return {}, [f"manifest.json does not list exactly {', '.join(PAYLOAD_FILES)}"]
    files: dict[str, FileDigest] = {}
    problems: list[str] = []
    for name, facts in sorted(listed.items()):
        sha = facts.get("sha256") if isinstance(facts, dict) else None
        size = facts.get("size") if isinstance(facts, dict) else None
        if is_sha256_tag(sha) and isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            files[name] = FileDigest(sha256=str(sha), size=size)
        else:
            problems.append(f"manifest.json lists {name} without a valid sha256 and size")
    return files, problems


def _signature_problems(manifest: dict[str, Any], key: Ed25519PublicKey | None) -> list[str]:
    signature = manifest.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != signing.ALGORITHM:
        return ["manifest.json has no Ed25519 signature"]
    if key is None:
        return ["manifest.json signature cannot be checked: no public key"]
    if signature.get("key") != signing.fingerprint(key):
        return [f"manifest.json is signed by another key ({signature.get('key')!r})"]
    try:
        payload = signed_bytes(manifest)
    except (TypeError, ValueError):
        return ["manifest.json signature is not valid"]
    if not signing.verify(key, payload, signature.get("value")):
        return ["manifest.json signature is not valid (the manifest was edited, or signed by another key)"]
    return []
