"""Issue 7: EWS capture at wire speed. For 50 KB, 5 MB, 25 MB and 100 MB messages, p50 of
(a) the raw protocol floor — one GetItem POST with requests (stream=True), lxml iterparse, base64
    decode of MimeContent, write + fsync;
(b) our capture adapter alone (EwsMailbox.capture into a file, fsynced);
(c) the full POST→201 through the service;
with ratios (b)/(a) and (c)/(a), and peak RSS growth of (c) per size in a fresh process. Also checks
that a 100 MB message over ADDIN_MAX_MESSAGE_BYTES gets a clean 413 with nothing written.

The service decodes MimeContent with pybase64, the floor (as issue 7 defines it) with the standard
library; (a') is the floor with pybase64 too, and (c)/(a') says what is left once both decode alike.

    .venv/bin/python -m benchmarks.capture_floor
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pybase64

from benchmarks._floors import RawFloor
from benchmarks._harness import REPORTER, ROOT, emit, ews_double_process, measure, scratch_dir, service, summary, timed

SIZES = {"50KB": 50_000, "5MB": 5_000_000, "25MB": 25_000_000, "100MB": 100_000_000}
RUNS = {"50KB": 30, "5MB": 10, "25MB": 5, "100MB": 3}
TARGETS = {"50KB": 2.0, "5MB": 1.25, "25MB": 1.25, "100MB": 1.25}


class FileSink:
    def __init__(self, path: Path) -> None:
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes, /) -> int:
        return self._fh.write(data)

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def adapter_capture(mailbox: object, item_id: str, out: Path) -> None:
    from addin_service.mail.ports import ItemRef

    sink = FileSink(out)
    try:
        mailbox.capture(ItemRef(item_id=item_id, mailbox=REPORTER, reporter=REPORTER), sink)  # type: ignore[attr-defined]
    finally:
        sink.close()


def latencies() -> dict[str, object]:
    messages = [(size, seed) for label, size in SIZES.items() for seed in range(2 * RUNS[label] + 1)]
    out: dict[str, object] = {}
    with ews_double_process(messages) as ews:
        work = scratch_dir()
        raw = RawFloor(ews)
        fast_raw = RawFloor(ews, decode=pybase64.b64decode)
        with service(ews, work, ADDIN_MAX_MESSAGE_BYTES=str(200_000_000)) as svc:
            mailbox = svc.app.extensions["addin"].mailbox
            for label, size in SIZES.items():
                runs = RUNS[label]
                warm = ews.items[(size, 2 * runs)]
                raw.fetch(warm, work / "raw.eml")
                adapter_capture(mailbox, warm, work / "ours.eml")
                a, a_fast, b, c = [], [], [], []
                for seed in range(runs):
                    item = ews.items[(size, seed)]
                    fresh = ews.items[(size, runs + seed)]
                    a.append(timed(lambda item=item: raw.fetch(item, work / "raw.eml")))
                    a_fast.append(timed(lambda item=item: fast_raw.fetch(item, work / "raw.eml")))
                    b.append(timed(lambda item=item: adapter_capture(mailbox, item, work / "ours.eml")))
                    seconds, response = measure(lambda fresh=fresh: svc.post_report(fresh))
                    assert response.status_code == 201, response.text
                    c.append(seconds)
                sa, sa_fast, sb, sc = summary(a), summary(a_fast), summary(b), summary(c)
                out[label] = {
                    "a_raw_floor": sa,
                    "a_prime_raw_floor_pybase64": sa_fast,
                    "b_capture_adapter": sb,
                    "c_post_to_201": sc,
                    "ratio_b_over_a": round(sb["p50_ms"] / sa["p50_ms"], 3),
                    "ratio_c_over_a": round(sc["p50_ms"] / sa["p50_ms"], 3),
                    "ratio_c_over_a_prime": round(sc["p50_ms"] / sa_fast["p50_ms"], 3),
                    "target_c_over_a": TARGETS[label],
                }
    return out


def rss(size: int, limit: int | None = None) -> dict[str, object]:
    args = [sys.executable, "-m", "benchmarks._rss_probe", str(size)] + ([str(limit)] if limit else [])
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    result: dict[str, object] = {"benchmark": "capture_floor", "latency": latencies()}
    result["rss_growth_of_post_to_201"] = {
        label: {k: v for k, v in rss(size).items() if k in ("status", "peak_growth_mb", "seconds")}
        for label, size in SIZES.items()
    }
    result["rss_target_growth_mb_at_100MB"] = 64
    too_large = rss(SIZES["100MB"], limit=50_000_000)
    result["over_limit_100MB"] = {
        "status": too_large["status"],
        "packages_written_besides_warmup": too_large["packages_after_warmup_and_message"] - 1,
        "temp_entries_left": too_large["temp_entries_left"],
        "peak_growth_mb": too_large["peak_growth_mb"],
    }
    emit(result)


if __name__ == "__main__":
    main()
