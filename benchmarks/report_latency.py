"""Issue 3: POST→201 latency against the EWS double, as a ratio to exchangelib's own fetch.

Baseline, same run, same server: exchangelib (as shipped) fetching the same item's MimeContent
and headers, then writing and fsyncing the bytes. Also: peak RSS growth while filing a 100 MB
message (measured in a fresh process). Prints JSON.

    .venv/bin/python -m benchmarks.report_latency [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks._floors import ExchangelibFloor
from benchmarks._harness import ROOT, emit, ews_double_process, measure, scratch_dir, service, summary, timed

SIZES = {"50KB": 50_000, "5MB": 5_000_000}
TARGET_RATIO = 1.25


def latency(runs: int) -> dict[str, object]:
    messages = [(size, seed) for size in SIZES.values() for seed in range(runs + 2)]
    results: dict[str, object] = {}
    with ews_double_process(messages) as ews:
        work = scratch_dir()
        floor = ExchangelibFloor(ews)
        with service(ews, work) as svc:
            for label, size in SIZES.items():
                # Warm both paths (connections, JWKS, SQLite) on seeds that are not measured.
                floor.fetch(ews.items[(size, runs + 1)], work / "floor.eml")
                assert svc.post_report(ews.items[(size, runs)]).status_code == 201
                floor_samples, ours = [], []
                for seed in range(runs):
                    item = ews.items[(size, seed)]
                    floor_samples.append(timed(lambda item=item: floor.fetch(item, work / "floor.eml")))
                    seconds, response = measure(lambda item=item: svc.post_report(item))
                    assert response.status_code == 201, response.text
                    ours.append(seconds)
                f, o = summary(floor_samples), summary(ours)
                results[label] = {
                    "floor_exchangelib_fetch_write_fsync": f,
                    "post_to_201": o,
                    "ratio_p50": round(o["p50_ms"] / f["p50_ms"], 3),
                    "target_ratio_p50": TARGET_RATIO,
                }
    return results


def rss_100mb() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._rss_probe", str(100 * 1024 * 1024)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    probe["target_growth_bytes"] = int(1.5 * probe["message_bytes"])
    return probe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {"benchmark": "report_latency", "latency": latency(args.runs)}
    if not args.skip_rss:
        result["rss_100mb"] = rss_100mb()
    emit(result)


if __name__ == "__main__":
    main()
