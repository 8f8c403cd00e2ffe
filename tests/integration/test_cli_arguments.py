"""``run``, ``demo`` and ``evidence export`` given arguments they cannot honour, as an admin types
them: each stops with one line that says what cannot be done and why, and a non-zero status, never
a traceback, and never starts serving something other than what was asked for.

``run`` and ``demo`` run in their own process, so that one that starts serving anyway is stopped
after a while and fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from addin_service.cli import cli
from addin_service.cli_support import CommandFailed
from addin_service.demo.runner import start_demo
from tests.fakes.commands import UNUSED_EXCHANGE
from tests.fakes.evidence import sample_message
from tests.fakes.ports import free_port
from tests.fakes.stack import running_stack

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SERVES_FOR = 20  # seconds a command that should have stopped at once may run before the test fails


def command(tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``addin-service ARGV`` in its own process, with only this test's ``ADDIN_*`` variables and its
    data under ``tmp``; one still running after :data:`SERVES_FOR` seconds fails the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDIN_")}
    env.update(
        {
            **UNUSED_EXCHANGE,
            "ADDIN_DATABASE_URL": f"sqlite:///{tmp / 'addin.db'}",
            "ADDIN_EVIDENCE_URL": f"file://{tmp / 'evidence'}",
            "ADDIN_WORKER": "false",
            "ADDIN_LOG_LEVEL": "warning",
        }
    )
    program = [sys.executable, "-c", "from addin_service.cli import main; main()", *argv]
    try:
        return subprocess.run(
            program, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SERVES_FOR, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(argv)}` kept running instead of stopping: {exc.stderr!r}")


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_stopped_cleanly(done: subprocess.CompletedProcess[str], status: int = 1) -> None:
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "serving on" not in done.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# -- arguments click can check -----------------------------------------------------------------


@pytest.mark.parametrize("command_name", ["run", "demo"])
@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_a_port_that_is_not_a_tcp_port_is_refused_before_anything_starts(
    tmp_path: Path, command_name: str, port: str
) -> None:
    """``run --port 99999`` used to say "serving on ...:99999" while listening on 34463 (the
    socket layer takes the port modulo 65536)."""
    done = command(tmp_path, command_name, "--port", port)

    assert_stopped_cleanly(done, status=2)
    assert "Invalid value for '--port'" in done.stderr
    assert "1<=x<=65535" in done.stderr


@pytest.mark.parametrize("threads", ["0", "-3", "257"])
def test_run_refuses_a_thread_count_that_would_leave_every_request_hanging(tmp_path: Path, threads: str) -> None:
    """``run --threads 0`` used to start and then answer nothing: no thread ever took a request."""
    done = command(tmp_path, "run", "--port", str(free_port()), "--threads", threads)

    assert_stopped_cleanly(done, status=2)
    assert "Invalid value for '--threads'" in done.stderr
    assert "1<=x<=256" in done.stderr


def test_demo_refuses_a_data_folder_that_is_a_file(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder\n")

    done = command(tmp_path, "demo", "--port", str(free_port()), "--data", str(plain))

    assert_stopped_cleanly(done, status=2)
    assert "Invalid value for '--data'" in done.stderr and "is a file" in done.stderr
    assert plain.read_text() == "not a folder\n"


# -- addresses that cannot be listened on --------------------------------------------------------


def test_run_on_a_port_in_use_says_which_address_and_why(tmp_path: Path, busy_port: int) -> None:
    done = command(tmp_path, "run", "--port", str(busy_port))

    assert_stopped_cleanly(done)
    assert last_line(done) == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use: another program is listening "
        "there (choose another --port)"
    )


@pytest.mark.parametrize("host", ["256.1.1.1", "nosuchhost.invalid"])
def test_run_on_a_host_that_is_not_an_address_says_so(tmp_path: Path, host: str) -> None:
    """waitress says only "Invalid host/port specified."; the resolver says why."""
    port = free_port()
    done = command(tmp_path, "run", "--host", host, "--port", str(port))

    assert_stopped_cleanly(done)
    assert last_line(done).startswith(
        f"error: cannot listen on {host}:{port}: '{host}' is neither an IP address nor a name that resolves ("
    )


def test_run_on_an_address_of_another_machine_says_it_is_not_this_ones(tmp_path: Path) -> None:
    port = free_port()
    done = command(tmp_path, "run", "--host", "192.0.2.1", "--port", str(port))  # TEST-NET-1: nobody's

    assert_stopped_cleanly(done)
    assert last_line(done).startswith(f"error: cannot listen on 192.0.2.1:{port}: ")
    assert "it is not an address of this machine (choose another --host)" in last_line(done)


def test_demo_on_a_port_in_use_says_which_address_and_why(tmp_path: Path, busy_port: int) -> None:
    """The demo's doubles have started by then; they are stopped and the process ends."""
    done = command(tmp_path, "demo", "--port", str(busy_port), "--data", str(tmp_path / "demo"))

    assert_stopped_cleanly(done)
    assert last_line(done) == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use: another program is listening "
        "there (choose another --port)"
    )


# -- folders that cannot be created or written -----------------------------------------------------


def test_demo_says_when_its_data_folder_cannot_be_created(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder\n")

    done = command(tmp_path, "demo", "--port", str(free_port()), "--data", str(plain / "demo"))

    assert_stopped_cleanly(done)
    assert last_line(done) == (
        f"error: cannot create the demo's data folder {plain / 'demo'}: Not a directory; choose another with --data"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where nothing can be created")
def test_demo_says_when_its_data_folder_is_on_a_file_system_that_takes_none(tmp_path: Path) -> None:
    done = command(tmp_path, "demo", "--port", str(free_port()), "--data", "/proc/addin-demo")

    assert_stopped_cleanly(done)
    assert last_line(done).startswith("error: cannot create the demo's data folder /proc/addin-demo: ")


def test_start_demo_refuses_a_data_folder_that_is_a_file_before_starting_anything(tmp_path: Path) -> None:
    """What ``demo --data`` checks up front, ``start_demo`` says too when called directly."""
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder\n")

    with pytest.raises(CommandFailed, match="a file that is not a folder is in the way"):
        start_demo(plain)


def export(tmp_path: Path, output: str) -> tuple[Result, str]:
    """``evidence export`` of a case holding one filed report, to ``output``; and the case's id."""
    with running_stack(tmp_path) as stack:
        case_id: str = stack.report(stack.add_message(sample_message())).get_json()["case_id"]
        env = {"ADDIN_EVIDENCE_URL": stack.settings.evidence_url, "ADDIN_DATABASE_URL": stack.settings.database_url}
        return CliRunner().invoke(cli, ["evidence", "export", case_id, "-o", output], env=env), case_id


def test_export_into_a_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    result, case_id = export(tmp_path, str(tmp_path / "nonexistent" / "dir" / "case.zip"))

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.output.strip() == (
        f"error: cannot write the export into {tmp_path / 'nonexistent' / 'dir'}: it does not exist; "
        "choose another -o path"
    )
    assert not (tmp_path / "nonexistent").exists()


def test_export_into_a_file_as_if_it_were_a_folder_says_so(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("not a folder\n")

    result, _ = export(tmp_path, str(plain / "case.zip"))

    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: cannot write the export into {plain}: it is not a folder; choose another -o path"
    )
    assert plain.read_text() == "not a folder\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where nothing can be created")
def test_export_into_a_folder_that_takes_no_files_says_it_cannot_be_written(tmp_path: Path) -> None:
    result, _ = export(tmp_path, "/proc/case.zip")

    assert result.exit_code == 1
    assert result.output.startswith("error: cannot write the export into /proc: it cannot be written (")
    assert "Traceback" not in result.output
