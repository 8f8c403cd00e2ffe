"""In a fresh process: file one message of N bytes through the service; print RSS growth as JSON.

python -m benchmarks._rss_probe SIZE [ADDIN_MAX_MESSAGE_BYTES]
"""

from __future__ import annotations

import json
import sys

from benchmarks._harness import PeakRss, ews_double_process, scratch_dir, service, timed


def main() -> None:
    size = int(sys.argv[1])
    limit = sys.argv[2] if len(sys.argv) > 2 else str(2 * size)
    with (
        ews_double_process([(50_000, 0), (size, 1)]) as ews,
        service(ews, scratch_dir(), ADDIN_MAX_MESSAGE_BYTES=limit) as svc,
    ):
        assert svc.post_report(ews.items[(50_000, 0)]).status_code == 201  # warm everything up
        statuses: list[int] = []
        with PeakRss() as sampler:
            seconds = timed(lambda: statuses.append(svc.post_report(ews.items[(size, 1)]).status_code))
        before, peak = sampler.before, sampler.peak
        root = svc.settings.evidence_path
        packages = len([p for p in root.glob("HR-*/R-*") if p.is_dir()])
        tmp_left = len(list((root / ".tmp").iterdir())) if (root / ".tmp").exists() else 0
    print(
        json.dumps(
            {
                "packages_after_warmup_and_message": packages,
                "temp_entries_left": tmp_left,
                "message_bytes": size,
                "status": statuses[0],
                "seconds": round(seconds, 3),
                "rss_before_bytes": before,
                "peak_rss_bytes": peak,
                "peak_growth_bytes": peak - before,
                "peak_growth_mb": round((peak - before) / 1024 / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
