"""GraphHttp's retry loop (``responses``, a fake clock): how long it waits, and how often it asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses

from addin_service.mail.graph_http import MAX_BACKOFF, MIN_BACKOFF, GraphHttp, GraphHttpError
from tests.fakes.graph import FakeTime, fixture

GRAPH = "https://graph.microsoft.com/v1.0"
MESSAGE = f"{GRAPH}/users/alex@contoso.com/messages/AAMk"
PAST = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class CountedTime(FakeTime):
    """A fake clock that stops a retry loop which would otherwise never let time pass."""

    LIMIT = 500

    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) >= self.LIMIT:
            raise AssertionError(f"still retrying after {self.LIMIT} waits: {self.sleeps[-3:]}")
        super().sleep(seconds)


def client(time: FakeTime, max_wait: float = 20.0) -> GraphHttp:
    return GraphHttp(GRAPH, requests.Session(), max_wait=max_wait, read_timeout=5.0, sleep=time.sleep, clock=time.clock)


def busy(graph: responses.RequestsMock, status: int, retry_after: str) -> None:
    name = "error_throttled.json" if status == 429 else "error_service_unavailable.json"
    graph.add(responses.GET, MESSAGE, status=status, json=fixture(name), headers={"Retry-After": retry_after})


def get(http: GraphHttp) -> requests.Response:
    return http.request("GET", http.url("users", "alex@contoso.com", "messages", "AAMk"), bearer=None, operation="get")


@pytest.mark.parametrize(("status", "retry_after"), [(429, "0"), (503, "0"), (429, PAST), (503, PAST)])
def test_a_retry_after_of_nothing_still_waits_the_backoff_and_the_attempts_stay_few(
    graph: responses.RequestsMock, status: int, retry_after: str
) -> None:
    busy(graph, status, retry_after)
    time = CountedTime()

    with pytest.raises(GraphHttpError) as raised:
        get(client(time, max_wait=20))

    assert time.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert all(wait >= MIN_BACKOFF for wait in time.sleeps)
    assert len(graph.calls) == len(time.sleeps) + 1 == 6
    assert raised.value.status == status


def test_a_long_allowed_wait_with_retry_after_zero_is_spent_in_bounded_steps(
    graph: responses.RequestsMock,
) -> None:
    busy(graph, 429, "0")
    time = CountedTime()

    with pytest.raises(GraphHttpError):
        get(client(time, max_wait=120))

    assert min(time.sleeps) >= MIN_BACKOFF
    assert sum(time.sleeps) <= 120
    assert len(graph.calls) <= 1 + 120 / MIN_BACKOFF
    assert len(graph.calls) == 19  # 0.5 + 1 + 2 + 4, then 8 s each until 120 s would be passed


def test_giving_up_after_retry_after_zero_advises_a_real_wait(graph: responses.RequestsMock) -> None:
    busy(graph, 503, "0")
    time = CountedTime()

    with pytest.raises(GraphHttpError) as raised:
        get(client(time, max_wait=5))

    assert raised.value.retry_after is not None
    assert raised.value.retry_after >= 1


def test_retry_after_zero_then_success_waits_the_first_backoff_once(graph: responses.RequestsMock) -> None:
    busy(graph, 429, "0")
    graph.add(responses.GET, MESSAGE, json={"id": "AAMk"})
    time = CountedTime()

    response = get(client(time))

    assert response.json() == {"id": "AAMk"}
    assert time.sleeps == [MIN_BACKOFF]


def test_a_retry_after_longer_than_the_backoff_is_waited_in_full(graph: responses.RequestsMock) -> None:
    busy(graph, 429, "3")
    busy(graph, 429, "1")
    graph.add(responses.GET, MESSAGE, json={"id": "AAMk"})
    time = CountedTime()

    get(client(time))

    assert time.sleeps == [3.0, 1.0]


def test_the_backoff_never_exceeds_its_ceiling(graph: responses.RequestsMock) -> None:
    busy(graph, 503, "0")
    time = CountedTime()

    with pytest.raises(GraphHttpError):
        get(client(time, max_wait=60))

    assert max(time.sleeps) == MAX_BACKOFF
