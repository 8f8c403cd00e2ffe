"""The bytes of headers.txt, metadata.json and manifest.json."""

from __future__ import annotations

import json
import math

import pytest

from addin_service import ids
from addin_service.evidence import signing
from addin_service.evidence.canonical import canonical_json, sha256_tag
from addin_service.evidence.fsio import FileDigest
from addin_service.evidence.keys import Signer
from addin_service.evidence.ledger import LedgerEntry
from addin_service.evidence.manifest import build_manifest, check_manifest, encode_manifest, signed_bytes
from addin_service.evidence.package import encode_headers, encode_metadata

DIGEST = FileDigest("sha256:" + "00" * 32, 3)


def make_signer() -> Signer:
    key = signing.generate_private_key()
    return Signer(key, key.public_key(), signing.fingerprint(key.public_key()))


def test_headers_are_name_colon_value_crlf_with_folds_kept() -> None:
    headers = (("Received", "from a\r\n\tby b"), ("X-Odd", "  spaced  "))
    assert encode_headers(headers) == b"Received: from a\r\n\tby b\r\nX-Odd:   spaced  \r\n"


def test_header_text_is_utf8_and_a_lone_surrogate_is_kept() -> None:
    assert encode_headers((("Subject", "Grüße \udcff"),)) == "Subject: Grüße \udcff\r\n".encode(
        "utf-8", "surrogatepass"
    )


def test_metadata_is_sorted_indented_utf8() -> None:
    assert encode_metadata({"b": "ü", "a": 1}) == '{\n  "a": 1,\n  "b": "ü"\n}\n'.encode()


def test_metadata_with_a_lone_surrogate_falls_back_to_ascii_escapes() -> None:
    data = encode_metadata({"subject": "bad \udc80"})
    assert json.loads(data) == {"subject": "bad \udc80"}


def test_metadata_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_metadata({"score": math.nan})


def _manifest_and_entry(signer: Signer) -> tuple[bytes, LedgerEntry]:
    case_id, report_id = ids.new_case_id(), ids.new_report_id()
    manifest = build_manifest(
        case_id=case_id,
        report_id=report_id,
        created_at="2026-11-25T09:00:00.000000Z",
        files={"headers.txt": DIGEST, "message.eml": DIGEST, "metadata.json": DIGEST},
        sequence=1,
        previous_hash=None,
        signer=signer,
    )
    data = encode_manifest(manifest)
    entry = LedgerEntry.create(
        None, case_id, report_id, sha256_tag(data), "2026-11-25T09:00:00.000000Z", signer
    )
    return data, entry


def test_the_manifest_signature_covers_everything_but_itself() -> None:
    signer = make_signer()
    data, _ = _manifest_and_entry(signer)
    manifest = json.loads(data)
    assert signed_bytes(manifest) == canonical_json({k: v for k, v in manifest.items() if k != "signature"})
    assert signing.verify(signer.public_key, signed_bytes(manifest), manifest["signature"]["value"])


def test_a_genuine_manifest_has_no_problems() -> None:
    signer = make_signer()
    data, entry = _manifest_and_entry(signer)
    files, problems = check_manifest(data, entry, signer.public_key)
    assert problems == []
    assert set(files) == {"headers.txt", "message.eml", "metadata.json"}


def test_a_manifest_checked_with_another_key_is_reported() -> None:
    data, entry = _manifest_and_entry(make_signer())
    _, problems = check_manifest(data, entry, make_signer().public_key)
    assert problems and "another key" in problems[0]


def test_an_edited_size_breaks_the_manifest_signature() -> None:
    signer = make_signer()
    data, entry = _manifest_and_entry(signer)
    manifest = json.loads(data)
    manifest["files"]["message.eml"]["size"] = 4
    _, problems = check_manifest(encode_manifest(manifest), entry, signer.public_key)
    assert any("signature is not valid" in p for p in problems)
