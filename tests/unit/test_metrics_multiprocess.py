"""Which counters ``/metrics`` shows: ``PROMETHEUS_MULTIPROC_DIR`` must name a directory this process
can write to, set before prometheus_client was imported; anything else stops start-up naming it.
(That the processes' counters add up is tested under gunicorn, in test_gunicorn_config.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from addin_service.errors import ConfigError
from addin_service.observability.metrics import Metrics, multiprocess_dir


def test_without_the_variable_each_process_shows_its_own_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    metrics = Metrics()
    metrics.reports.labels(outcome="filed").inc()

    assert multiprocess_dir() is None
    assert b'addin_reports_total{outcome="filed"} 1.0' in metrics.render()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_variable_that_names_no_directory_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / kind
    if kind == "file":
        path.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))

    with pytest.raises(ConfigError) as raised:
        Metrics()

    assert raised.value.variable == "PROMETHEUS_MULTIPROC_DIR"
    assert str(path) in str(raised.value)


def test_a_variable_set_after_prometheus_client_chose_in_process_counters_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test process imported prometheus_client without the variable, as a service whose
    # environment was changed after start would have.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR: was set after the service started"):
        multiprocess_dir()
