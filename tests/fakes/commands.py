"""The service run as a command in its own process, as an admin starts it: the settings that let it
start without reaching anything, and waiting until it answers."""

from __future__ import annotations

import subprocess
import time

import requests

# Enough for the service to start; nothing here reaches Exchange or Entra ID.
UNUSED_EXCHANGE = {
    "ADDIN_EXCHANGE": "ews",
    "ADDIN_EWS_URL": "https://unused.invalid/EWS/Exchange.asmx",
    "ADDIN_EWS_AUTH": "oauth-app",
    "ADDIN_CLIENT_SECRET": "unused",
    "ADDIN_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "ADDIN_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
}


def loopback_session() -> requests.Session:
    """Straight to a server on loopback: never through a proxy from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def wait_until_healthy(proc: subprocess.Popen[str], base: str, what: str, timeout: float = 45) -> None:
    """Poll ``base``/healthz until it answers 2xx; fail the test with the process's output if it
    exits first, or with ``what`` if it does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with loopback_session() as http:
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if http.get(f"{base}/healthz", timeout=5).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # still starting
                pass
            assert time.monotonic() < deadline, f"{what} did not answer /healthz"
            time.sleep(0.1)
