"""Issue 6: POST→201 in Graph mode against a bare requests GET of the same $value, same double, same
run (target p50 ratio ≤ 1.25), and peak RSS growth while filing a 100 MB message (target ≤ 64 MB).

The Graph double runs in its own process; msal exchanges tokens on behalf of the reporter at the
Entra double over TLS, as in production.

    .venv/bin/python -m benchmarks.graph_latency [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from waitress.server import create_server

from benchmarks._harness import REPORTER, PeakRss, double_process, emit, measure, scratch_dir, summary, timed

SIZES = {"50KB": 50_000, "5MB": 5_000_000}
BIG = 100_000_000


@contextmanager
def graph_double(messages: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
    request = {"reporter": REPORTER, "messages": messages}
    with double_process("benchmarks._graph_double_process", request) as info:
        info["by_key"] = {(s, seed): (ews, rest) for s, seed, ews, rest in info["items"]}
        yield info


@contextmanager
def graph_service(graph_url: str, work: Path) -> Iterator[tuple[str, Any, Any]]:
    from addin_service.app import build_app
    from addin_service.bootstrap import build_container
    from addin_service.demo.oidc import OidcIssuer
    from addin_service.settings import Settings

    resource = graph_url.rsplit("/", 1)[0]
    with OidcIssuer(
        tls=True, delegated_scopes={resource: ("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All")}
    ) as issuer:
        os.environ["REQUESTS_CA_BUNDLE"] = str(issuer.ca_bundle_path)
        settings = Settings.from_env(
            {
                "ADDIN_EXCHANGE": "graph",
                "ADDIN_GRAPH_URL": graph_url,
                "ADDIN_GRAPH_AUTH": "obo",
                "ADDIN_TENANT_ID": issuer.tenant_id,
                "ADDIN_CLIENT_ID": issuer.client_id,
                "ADDIN_CLIENT_SECRET": issuer.client_secret,
                "ADDIN_AUTHORITY": issuer.authority,
                "ADDIN_DATABASE_URL": f"sqlite:///{work / 'addin.db'}",
                "ADDIN_EVIDENCE_URL": f"file://{work / 'ev'}",
                "ADDIN_MAX_MESSAGE_BYTES": str(2 * BIG),
                "ADDIN_RATE_LIMIT": "100000/1h",
                "ADDIN_LOG_LEVEL": "warning",
                "ADDIN_EWS_TIMEOUT": "120",
                "ADDIN_WORKER": "false",
            },
            cwd=work,
        )
        app = build_app(container=build_container(settings))
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        threading.Thread(target=server.run, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}", issuer.mint(REPORTER), app
        finally:
            server.close()
            app.extensions["addin"].close()


def bare_get(graph_url: str, rest_id: str, out: Path, session: requests.Session) -> None:
    with session.get(
        f"{graph_url}/users/{REPORTER}/messages/{rest_id}/$value",
        headers={"Authorization": "Bearer bench"},
        stream=True,
        timeout=300,
    ) as response:
        response.raise_for_status()
        with open(out, "wb") as fh:
            for chunk in response.iter_content(64 * 1024):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())


def post(base: str, token: str, ews_id: str) -> int:
    return post_response(base, token, ews_id).status_code


def post_response(base: str, token: str, ews_id: str) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/reports",
        json={"item_id": ews_id, "category": "other"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    runs = args.runs
    messages = [(size, seed) for size in SIZES.values() for seed in range(runs + 1)] + [(50_000, 999), (BIG, 0)]
    result: dict[str, Any] = {"benchmark": "graph_latency", "latency": {}}
    with graph_double(messages) as graph:
        work = scratch_dir()
        session = requests.Session()
        with graph_service(graph["graph_url"], work) as (base, token, _app):
            for label, size in SIZES.items():
                warm_ews, warm_rest = graph["by_key"][(size, runs)]
                bare_get(graph["graph_url"], warm_rest, work / "bare.eml", session)
                assert post(base, token, warm_ews) == 201
                floor, ours = [], []
                for seed in range(runs):
                    ews_id, rest_id = graph["by_key"][(size, seed)]
                    floor.append(timed(lambda r=rest_id: bare_get(graph["graph_url"], r, work / "bare.eml", session)))
                    seconds, status = measure(lambda e=ews_id: post(base, token, e))
                    assert status == 201, status
                    ours.append(seconds)
                f, o = summary(floor), summary(ours)
                result["latency"][label] = {
                    "floor_bare_get_value": f,
                    "post_to_201": o,
                    "ratio_p50": round(o["p50_ms"] / f["p50_ms"], 3),
                    "target_ratio_p50": 1.25,
                }
            with PeakRss() as sampler:
                seconds, big = measure(lambda: post_response(base, token, graph["by_key"][(BIG, 0)][0]))
            result["rss_100mb_status"] = big.status_code
            result["rss_100mb_stored_bytes"] = big.json().get("size")
            result["rss_100mb"] = {
                "seconds": round(seconds, 2),
                "peak_growth_mb": round(sampler.growth / 2**20, 1),
                "target_growth_mb": 64,
            }
    emit(result)


if __name__ == "__main__":
    main()
