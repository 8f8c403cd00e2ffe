"""infra/gunicorn.conf.py: the service as deployed at scale, in gunicorn's own processes.

Two worker processes share one SQLite database and one evidence store; a report filed through
either is sealed in the one ledger and verifies. ``/metrics`` adds up both processes, whichever one
answers the scrape. A configuration error stops start-up naming the variable, and the signed
``/ack/<token>`` path never reaches an access log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from addin_service.demo.ews_seed import sample_messages
from addin_service.demo.ews_server import EwsServer
from addin_service.demo.oidc import OidcIssuer
from tests.fakes.commands import wait_until_healthy
from tests.fakes.ports import free_port
from tests.fakes.stack import REPORTER, stack_env
from tests.integration.test_api_concurrency import MIME, THREADS, race

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "infra" / "gunicorn.conf.py"
pytestmark = pytest.mark.timeout(90)


def _gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[str]:
    child_env = {**os.environ, **env, "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} --workers {workers} --threads 4"}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG), "addin_service:create_app()"],
        cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@contextmanager
def served(env: dict[str, str], workers: int = 2) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = _gunicorn(env, port, workers)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, base, "gunicorn")
        yield base, proc
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_two_worker_processes_file_into_one_store_that_verifies(tmp_path: Path) -> None:
    with EwsServer() as ews, OidcIssuer() as issuer:
        ews.add_mailbox(REPORTER)
        items = [ews.add_message(REPORTER, mime) for mime in list(sample_messages().values())[:4]]
        env = stack_env(tmp_path, ews, issuer, ADDIN_LOG_LEVEL="warning")
        with served(env) as (base, proc):
            headers = {"Authorization": f"Bearer {issuer.mint(REPORTER)}"}
            answers = [
                requests.post(f"{base}/api/v1/reports", json={"item_id": item, "category": "threat-or-violence"},
                              headers=headers, timeout=30)
                for item in items
            ]
            ack = requests.get(f"{base}/ack/secret-looking-token-value", timeout=10)
            proc.terminate()
            output = proc.communicate(timeout=30)[0]
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["report_id"] for a in answers}) == 4
    assert ack.status_code in (400, 404)
    assert "secret-looking-token-value" not in output  # no access log
    verify = subprocess.run([str(Path(sys.executable).parent / "addin-service"), "evidence", "verify"],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "4" in verify.stdout


@pytest.mark.parametrize("key", ["same-key", None], ids=["idempotency-key", "same-item"])
def test_concurrent_retries_through_two_servers_make_one_report(tmp_path: Path, key: str | None) -> None:
    # Two gunicorn instances on one database and store, so the retries surely meet in two processes
    # (one gunicorn's processes share a socket, and one of them may accept every connection).
    with EwsServer() as ews, OidcIssuer() as issuer:
        ews.add_mailbox(REPORTER)
        item = ews.add_message(REPORTER, MIME)
        env = stack_env(tmp_path, ews, issuer, ADDIN_LOG_LEVEL="warning")
        with served(env, workers=1) as (first, _), served(env, workers=1) as (second, _):
            responses = race([first, second], issuer.mint(REPORTER), item, key)
        captures = ews.count("GetItem")

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (THREADS - 1) + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["report_id"] for r in responses}) == 1
    assert captures == 1
    assert len(list((tmp_path / "evidence").glob("HR-*/R-*"))) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ADDIN_EWS_TIMEOUT", "soon"), ("PROMETHEUS_MULTIPROC_DIR", "{tmp}/missing")],
    ids=["service-setting", "metrics-directory-not-there"],
)
def test_a_configuration_error_stops_start_up_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with EwsServer() as ews, OidcIssuer() as issuer:
        env = stack_env(tmp_path, ews, issuer, **{variable: value.format(tmp=tmp_path)})
        proc = _gunicorn(env, free_port(), 1)
        try:
            output = proc.communicate(timeout=60)[0]
        finally:
            proc.kill()
    assert proc.returncode != 0
    assert variable in output


def _healthz_answers_per_process(folder: Path) -> dict[str, float]:
    """How many ``/healthz`` answers each process's own counter file holds."""
    counts: dict[str, float] = {}
    for file in folder.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(file)]):
            for sample in family.samples:
                if sample.name == "addin_http_responses_total" and sample.labels["route"] == "/healthz":
                    counts[file.stem] = counts.get(file.stem, 0.0) + sample.value
    return counts


def _scraped_healthz_answers(base: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "addin_http_responses_total" and sample.labels["route"] == "/healthz"
    )


def test_metrics_add_up_every_worker_process_whichever_answers(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    with EwsServer() as ews, OidcIssuer() as issuer:
        env = stack_env(tmp_path, ews, issuer, ADDIN_LOG_LEVEL="warning", PROMETHEUS_MULTIPROC_DIR=str(folder))
        with served(env) as (base, _), ThreadPoolExecutor(8) as pool:
            before = sum(_healthz_answers_per_process(folder).values())
            sent = 0
            # Until both processes have answered some: otherwise one process's count would pass too.
            # By time, not by count: on a loaded machine one worker may still be booting while the
            # other answers hundreds of requests.
            deadline = time.monotonic() + 60
            while len(_healthz_answers_per_process(folder)) < 2 and time.monotonic() < deadline:
                answers = list(pool.map(lambda _: requests.get(f"{base}/healthz", timeout=10), range(40)))
                assert all(a.ok for a in answers)
                sent += len(answers)
            per_process = _healthz_answers_per_process(folder)
            scrapes = [_scraped_healthz_answers(base) for _ in range(6)]
            # A readiness probe that timed out while a worker was booting can still be answered
            # later, so the files are read again rather than trusting before + sent exactly.
            on_disk = sum(_healthz_answers_per_process(folder).values())
            gauges = {
                sample.name: sample.value
                for family in text_string_to_metric_families(requests.get(f"{base}/metrics", timeout=10).text)
                for sample in family.samples
            }

    assert len(per_process) == 2, per_process
    assert all(count > 0 for count in per_process.values()), per_process
    assert scrapes == [on_disk] * 6
    assert on_disk >= before + sent
    # Read from the shared stores at the scrape, as with one process.
    assert gauges["addin_outbox_up"] == 1
    assert gauges["addin_evidence_ledger_up"] == 1


def test_the_metrics_directory_it_makes_is_private_and_gone_after_exit(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    with EwsServer() as ews, OidcIssuer() as issuer:
        env = stack_env(tmp_path, ews, issuer, ADDIN_LOG_LEVEL="warning", TMPDIR=str(temp))
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with served({**env, "PROMETHEUS_MULTIPROC_DIR": ""}, workers=1) as (base, _):
            [made] = temp.iterdir()
            requests.get(f"{base}/healthz", timeout=10).raise_for_status()
            assert _scraped_healthz_answers(base) >= 1
            mode = made.stat().st_mode & 0o777
            files = sorted(f.name for f in made.iterdir())
    assert mode == 0o700
    assert any(name.startswith("counter_") for name in files), files
    assert list(temp.iterdir()) == []

