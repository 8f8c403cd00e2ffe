"""``addin-service demo`` honours the ``ADDIN_*`` variables an admin or a tester sets, except the ones
that wire it to its doubles, and a bad value stops it naming the variable, as ``run`` does."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from addin_service.demo.runner import start_demo
from addin_service.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_applies_the_variables_it_does_not_own_and_ignores_those_it_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "ADDIN_RATE_LIMIT": "500/1m",
        "ADDIN_WORKER": "false",
        "ADDIN_MAX_MESSAGE_BYTES": "1048576",
        "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
        "ADDIN_TENANT_ID": "00000000-0000-0000-0000-000000000001",
        "PATH": "/usr/bin",
    }
    with caplog.at_level(logging.WARNING, logger="addin_service.demo"):
        handle = start_demo(tmp_path / "demo", environ=environ)
    try:
        settings = handle.settings
        assert (settings.rate_limit, settings.worker, settings.max_message_bytes) == ((500, 60), False, 1048576)
        assert handle.ews is not None and settings.ews_url == handle.ews.url
        assert settings.tenant_id == handle.issuer.tenant_id
        assert "ADDIN_EWS_URL, ADDIN_TENANT_ID" in caplog.text
    finally:
        handle.stop()


def test_a_bad_variable_stops_the_demo_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^ADDIN_RATE_LIMIT: "):
        start_demo(tmp_path / "demo", environ={"ADDIN_RATE_LIMIT": "fast"})


def test_the_demo_command_exits_2_on_a_bad_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")} | {"ADDIN_RATE_LIMIT": "fast"}
    done = subprocess.run(
        [sys.executable, "-c", "from addin_service.cli import main; main()", "demo", "--data", str(tmp_path / "demo")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "ADDIN_RATE_LIMIT" in done.stderr
