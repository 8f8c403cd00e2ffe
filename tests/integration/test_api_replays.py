"""Replays of a filed report: never refused by the rate limit, and always the first request's body.

DESIGN.md: the same Idempotency-Key, or the same reporter reporting the same item again, returns the
first report; concurrent retries make one report. The per-caller limit guards Exchange and the disk
from new work, which a replay does not make.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from addin_service.cases.submission import ReportSubmissions
from addin_service.demo.ews_faults import Delay
from addin_service.errors import DatabaseUnavailable
from tests.fakes.stack import Stack, running_stack

SAM = "sam@fabrikam.example"
MISSING = "AAMkAGNoU3VjaEl0ZW0AAAAAAA=="


def mime(n: int, sender: str = SAM) -> bytes:
    head = f"From: Sam <{sender}>\r\nTo: alex@contoso.com\r\nSubject: s{n}\r\nMessage-ID: <rp{n}@x>\r\n"
    return f"{head}\r\n{n}\r\n".encode()


def reports_in_db(stack: Stack) -> int:
    db = Path(stack.settings.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from reports").fetchone()[0])


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as s:
        yield s


# --- the rate limit ---------------------------------------------------------------------------------


def test_replays_do_not_use_up_the_rate_limit(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="3/1h") as stack:
        first = stack.add_message(mime(1))
        assert stack.report(first, key="k-1").status_code == 201
        replays = [stack.report(first, key="k-1") for _ in range(9)]
        replays += [stack.report(first) for _ in range(4)]
        replays += [stack.report(first, key=f"fresh-{n}") for n in range(4)]

        assert [r.status_code for r in replays] == [200] * 17
        assert stack.report(stack.add_message(mime(2))).status_code == 201
        assert stack.report(stack.add_message(mime(3))).status_code == 201
        assert stack.report(stack.add_message(mime(4))).status_code == 429
        assert stack.report(first).status_code == 200  # still answered when the caller is at the limit


def test_items_that_do_not_exist_still_count_against_the_limit(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="2/1h") as stack:
        assert stack.report(MISSING).status_code == 404
        assert stack.report(MISSING).status_code == 404

        assert stack.report(stack.add_message(mime(1))).status_code == 429
        assert stack.ews.count("GetItem") == 2


def test_a_reused_idempotency_key_is_refused_without_charging(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="2/1h") as stack:
        assert stack.report(stack.add_message(mime(1)), key="k").status_code == 201
        assert stack.report(stack.add_message(mime(2)), key="k").status_code == 422

        assert stack.report(stack.add_message(mime(3))).status_code == 201


def at_once(count: int, request: Callable[[int], Any]) -> list[int]:
    """``request(n)`` for n in range(count), all released together; their status codes, sorted."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        barrier.wait()
        status = request(n).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_retries_arriving_while_the_first_request_files_are_not_charged(tmp_path: Path) -> None:
    with running_stack(tmp_path, ADDIN_RATE_LIMIT="2/1h") as stack:
        item = stack.add_message(mime(1))
        stack.ews.inject(Delay(0.5), operation="GetItem")  # the first request is still filing...

        statuses = at_once(8, lambda _: stack.report(item, key="k-1"))  # ...when the retries arrive

        assert statuses == [200] * 7 + [201]
        assert stack.report(stack.add_message(mime(2))).status_code == 201  # one charge left, not none
        assert stack.report(stack.add_message(mime(3))).status_code == 429


def test_a_key_reused_for_another_message_in_flight_is_refused_before_exchange_is_read(tmp_path: Path) -> None:
    """The refused request must not be captured and sealed: the evidence store would hold a
    report that the API said was never filed."""
    with running_stack(tmp_path) as stack:
        items = [stack.add_message(mime(1)), stack.add_message(mime(2))]
        stack.ews.inject(Delay(0.5), operation="GetItem")

        statuses = at_once(2, lambda n: stack.report(items[n], key="shared-key"))

        assert statuses == [201, 422]
        assert stack.ews.count("GetItem") == 1
        assert len(list(stack.evidence_root.glob("HR-*/R-*"))) == 1
        assert reports_in_db(stack) == 1


def test_a_request_that_filed_nothing_leaves_its_key_free(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        assert stack.report(MISSING, key="k-404").status_code == 404

        assert stack.report(stack.add_message(mime(1)), key="k-404").status_code == 201


# --- include_related: the replay answers the first body ------------------------------------------


class GatedRelated:
    """The real RelatedFiler, held at its start until ``gate`` opens (the report is filed by then)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = threading.Event()
        self.gate = threading.Event()

    def file_related(self, caller: Any, command: Any, body: dict[str, Any]) -> Any:
        self.entered.set()
        assert self.gate.wait(20)
        return self.real.file_related(caller, command, body)


class FailingOnce:
    """The first call fails as if the database dropped while the outcome was being recorded."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def file_related(self, caller: Any, command: Any, body: dict[str, Any]) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise DatabaseUnavailable("The database cannot be reached right now.", retry_after=1)
        return self.real.file_related(caller, command, body)


def in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def use_related(container: Any, related: Any) -> None:
    """File related messages through ``related`` (a wrapper of the real one) from now on."""
    container.submissions = ReportSubmissions(container.filer, related, container.repository)


@pytest.mark.parametrize(
    "retry",
    [
        {"key": "k", "include_related": True},  # the same request again
        {},  # the same item, no key, without the option: still the first body
    ],
    ids=["same-key", "same-item"],
)
def test_a_retry_while_related_messages_are_filed_answers_the_first_body(stack: Stack, retry: dict[str, Any]) -> None:
    container = stack.app.extensions["addin"]
    gated = GatedRelated(container.related)
    use_related(container, gated)
    reported = stack.add_message(mime(1))
    stack.add_message(mime(2))
    stack.add_message(mime(3))

    first_thread, first = in_thread(lambda: stack.report(reported, key="k", include_related=True))
    assert gated.entered.wait(20)
    retry_thread, again = in_thread(lambda: stack.report(reported, **retry))
    retry_thread.join(timeout=1.0)  # it must still be waiting for the first request
    gated.gate.set()
    first_thread.join(timeout=30)
    retry_thread.join(timeout=30)

    assert first[0].status_code == 201
    assert first[0].get_json()["related"]["filed"] == 2
    assert (again[0].status_code, again[0].get_json()) == (200, first[0].get_json())
    assert reports_in_db(stack) == 3


def test_a_retry_after_the_first_request_failed_midway_finishes_the_related_messages(stack: Stack) -> None:
    container = stack.app.extensions["addin"]
    use_related(container, FailingOnce(container.related))
    reported = stack.add_message(mime(1))
    stack.add_message(mime(2))
    assert stack.report(reported, key="k", include_related=True).status_code == 503
    assert reports_in_db(stack) == 1  # the report itself was filed before the failure

    again = stack.report(reported, key="k", include_related=True)

    assert again.status_code == 200
    assert again.get_json()["related"] == {"searched": True, "found": 1, "filed": 1, "already_filed": 0, "failed": 0}
    assert reports_in_db(stack) == 2
    assert stack.report(reported, key="k", include_related=True).get_json() == again.get_json()


def test_a_replay_of_a_report_filed_without_the_option_stays_without_it(stack: Stack) -> None:
    reported = stack.add_message(mime(1))
    stack.add_message(mime(2))
    first = stack.report(reported).get_json()

    again = stack.report(reported, include_related=True)

    assert (again.status_code, again.get_json()) == (200, first)
    assert reports_in_db(stack) == 1


def test_concurrent_retries_with_related_messages_all_answer_one_body(stack: Stack) -> None:
    reported = stack.add_message(mime(1))
    stack.add_message(mime(2))
    barrier = threading.Barrier(6)

    def one() -> Any:
        barrier.wait()
        return stack.report(reported, key="k", include_related=True)

    started = [in_thread(one) for _ in range(6)]
    for thread, _ in started:
        thread.join(timeout=60)
    responses = [out[0] for _, out in started]

    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    bodies = [r.get_json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["related"]["filed"] == 1
    assert reports_in_db(stack) == 2
