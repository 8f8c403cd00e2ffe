"""VERIFY.txt: how a person checks an exported case by hand, with standard tools."""

from __future__ import annotations

from string import Template

VERIFY_SCRIPT_BEGIN = "----- begin verify_export.py -----"
VERIFY_SCRIPT_END = "----- end verify_export.py -----"

_TEMPLATE = Template(
    """How to verify this evidence export by hand
==========================================

Case $case_id: $count report(s), exported $exported_at by Report Harassment for Outlook.
Signing key: $fingerprint
(the sha256 of the raw 32-byte Ed25519 public key in signing-key.pub.pem)

What is in this export
  <case>/<report>/message.eml    the message exactly as Exchange returned it
  <case>/<report>/headers.txt    the transport headers exactly as Exchange returned them
  <case>/<report>/metadata.json  facts about the message and the report
  <case>/<report>/manifest.json  sha256 and size of the three files above, the ledger
                                 position, and a signature
  ledger-entries.jsonl           this case's lines of the service's signed ledger, unchanged
  signing-key.pub.pem            the ledger's Ed25519 public key
  REPORT.html                    a printable summary of the reports (facts, origin, hashes,
                                 text, full headers) made from the files above at export
                                 time: a reading aid, not evidence
  SHA256SUMS                     the sha256 of every other file in this export

1. The files arrived intact. In the unzipped folder run
       sha256sum -c SHA256SUMS
   Every line must end in OK.

2. Each file matches its manifest. `sha256sum <case>/<report>/message.eml` (and headers.txt,
   metadata.json) must equal the "sha256" value for that file in the report's manifest.json
   (written there as sha256:<hex>); `stat -c %s FILE` must equal its "size".

3. Each manifest is the one the ledger recorded. `sha256sum <case>/<report>/manifest.json`
   must equal "manifest_sha256" (after "sha256:") in the line of ledger-entries.jsonl that
   has the same "report_id".

4. Each ledger entry is genuine. Its "hash" is the sha256 of the canonical JSON (keys sorted,
   no spaces, UTF-8) of its fields at, case_id, manifest_sha256, previous_hash, report_id and
   sequence. Its "signature" is a base64 Ed25519 signature of the text of "hash" (the 71
   characters "sha256:..."). With OpenSSL 3:
       printf '%s' 'sha256:<the entry's hash>' > hash.txt
       printf '%s' '<the entry's signature>' | base64 -d > hash.sig
       openssl pkeyutl -verify -pubin -inkey signing-key.pub.pem -rawin -in hash.txt -sigfile hash.sig
   It must print "Signature Verified Successfully".

5. Each manifest is signed. The "value" of manifest.json's "signature" is a base64 Ed25519
   signature of the canonical JSON of the manifest without its "signature" member.

Steps 2 to 5 in Python 3 (needs the "cryptography" package); save the lines between the markers
as verify_export.py in the unzipped folder and run `python3 verify_export.py` there. It prints
OK for each report and stops with an error at the first thing that does not match.

$begin
import base64, hashlib, json, pathlib
from cryptography.hazmat.primitives.serialization import load_pem_public_key

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()

key = load_pem_public_key(pathlib.Path("signing-key.pub.pem").read_bytes())
for line in pathlib.Path("ledger-entries.jsonl").read_text().splitlines():
    entry = json.loads(line)
    fields = ("at", "case_id", "manifest_sha256", "previous_hash", "report_id", "sequence")
    assert sha(canonical({k: entry[k] for k in fields})) == entry["hash"], "ledger entry hash"
    key.verify(base64.b64decode(entry["signature"]), entry["hash"].encode())
    folder = pathlib.Path(entry["case_id"], entry["report_id"])
    raw = (folder / "manifest.json").read_bytes()
    assert sha(raw) == entry["manifest_sha256"], "manifest.json hash"
    manifest = json.loads(raw)
    signature = manifest.pop("signature")
    key.verify(base64.b64decode(signature["value"]), canonical(manifest))
    for name, facts in sorted(manifest["files"].items()):
        data = (folder / name).read_bytes()
        assert (sha(data), len(data)) == (facts["sha256"], facts["size"]), name
    print("OK", entry["case_id"], entry["report_id"])
$end

Each entry's "previous_hash" is the "hash" of the entry before it in the service's whole
ledger, which covers every case. Checking that chain (no report removed, inserted or
reordered) needs the full ledger: ask the evidence administrator to run
`addin-service evidence verify`.
"""
)


def verify_text(*, case_id: str, count: int, exported_at: str, fingerprint: str) -> bytes:
    """VERIFY.txt for one export, as UTF-8 bytes."""
    return _TEMPLATE.substitute(
        case_id=case_id,
        count=count,
        exported_at=exported_at,
        fingerprint=fingerprint,
        begin=VERIFY_SCRIPT_BEGIN,
        end=VERIFY_SCRIPT_END,
    ).encode("utf-8")
