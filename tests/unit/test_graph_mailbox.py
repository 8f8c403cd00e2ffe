"""GraphMailbox against recorded-shape Graph payloads (``responses``): what it asks, what it keeps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import requests
import responses
from responses import matchers

from addin_service.errors import (
    MailboxUnavailable,
    MessageNotFound,
    MessageTooLarge,
    NotYourMailbox,
    ServiceError,
    Unauthenticated,
)
from addin_service.mail.graph import MESSAGE_SELECT, TRANSLATION_TTL, GraphMailbox, ews_to_rest_id
from addin_service.mail.ports import ItemRef, canonical_item_id
from tests.fakes.graph import BytesSink, FakeTime, StaticTokens, fixture, graph_settings, nasty_mime

GRAPH = "https://graph.microsoft.com/v1.0"
EWS_ID = "AAMk8W0F7GspJI0sYa2x6SY/eOT3us4blVAU++++////AA=="
REST_ID = "AAMk8W0F7GspJI0sYa2x6SY-eOT3us4blVAU____----AA=="
ALEX = "alex@contoso.com"
SSO = "the-add-in-sso-token"
TRANSLATE = f"{GRAPH}/users/{ALEX}/translateExchangeIds"
MESSAGE = f"{GRAPH}/users/{ALEX}/messages/{REST_ID}"
VALUE = f"{MESSAGE}/$value"


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve_message(
    graph: responses.RequestsMock, mime: bytes = b"", *, translate: bool = True, length: bool = False
) -> None:
    if translate:
        graph.add(responses.POST, TRANSLATE, json=fixture("translate_ews_to_rest.json"))
    graph.add(
        responses.GET,
        MESSAGE,
        json=fixture("message_headers.json"),
        match=[matchers.query_param_matcher({"$select": MESSAGE_SELECT})],
    )
    graph.add(
        responses.GET, VALUE, body=mime or nasty_mime(), content_type="text/plain", auto_calculate_content_length=length
    )


def ref(mailbox: str = ALEX, reporter: str = ALEX, token: str | None = SSO) -> ItemRef:
    return ItemRef(item_id=EWS_ID, mailbox=mailbox, reporter=reporter, user_token=token)


def mailbox(tokens: StaticTokens | None = None, time: FakeTime | None = None, **env: str) -> GraphMailbox:
    time = time or FakeTime()
    return GraphMailbox(graph_settings(GRAPH, **env), tokens or StaticTokens(), sleep=time.sleep, clock=time.clock)


def fail(
    graph: responses.RequestsMock, method: str, url: str, status: int, name: str, retry_after: int | None = None
) -> None:
    """Answer ``method url`` with Graph's error body ``name`` (and Retry-After, if given)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    graph.add(method, url, status=status, json=fixture(name), headers=headers)


def calls_to(graph: responses.RequestsMock, url: str) -> list[responses.Call]:
    return [c for c in graph.calls if c.request.url is not None and c.request.url.split("?")[0] == url]


def test_capture_streams_the_mime_byte_for_byte_and_keeps_headers_as_graph_returned_them(
    graph: responses.RequestsMock,
) -> None:
    serve_message(graph)
    sink = BytesSink()

    captured = mailbox().capture(ref(), sink)

    assert bytes(sink.data) == nasty_mime()
    expected = [(h["name"], h["value"]) for h in fixture("message_headers.json")["internetMessageHeaders"]]
    assert list(captured.headers) == expected
    assert captured.item_id == EWS_ID
    assert captured.change_key == "CQAAABYAAAC4ofQHEIqCSbQPot83AFcbAAAW/0tB"
    assert captured.internet_message_id == "<nasty-1@evil.example>"
    assert captured.subject == "Menace à toi"
    assert (captured.sender, captured.from_address) == ("eloise@evil.example", "eloise@evil.example")
    assert captured.received_at == "2026-11-24T23:59:59Z"
    assert (captured.adapter, captured.mime_source) == ("graph", "graph-value")
    assert captured.server_version == "Microsoft Graph v1.0"


def test_the_ews_id_is_translated_with_translate_exchange_ids_on_behalf_of_the_reporter(
    graph: responses.RequestsMock,
) -> None:
    serve_message(graph)
    tokens = StaticTokens()

    mailbox(tokens).capture(ref(), BytesSink())

    (call,) = calls_to(graph, TRANSLATE)
    assert json.loads(call.request.body or b"") == {
        "inputIds": [EWS_ID],
        "sourceIdType": "ewsId",
        "targetIdType": "restId",
    }
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["Authorization"] == "Bearer user-token-1"
    assert tokens.delegated_calls[0] == (SSO, ("Mail.Read", "User.ReadBasic.All"))


def test_odata_options_keep_their_dollar_sign_in_the_url(graph: responses.RequestsMock) -> None:
    serve_message(graph)

    mailbox().capture(ref(), BytesSink())

    (call,) = calls_to(graph, MESSAGE)
    assert f"?$select={MESSAGE_SELECT}" in (call.request.url or "")


def test_the_mime_reaches_the_sink_in_pieces_of_at_most_64_kib(graph: responses.RequestsMock) -> None:
    serve_message(graph, mime=nasty_mime() * 3)
    sink = BytesSink()

    mailbox().capture(ref(), sink)

    assert sink.writes >= 4
    assert len(sink.data) == len(nasty_mime()) * 3


@pytest.mark.parametrize("target", ["..", ".", "abc/../def", "abc?x=1", "abc#x", "abc%2F", ""])
def test_a_translated_id_that_is_not_an_item_id_never_reaches_another_graph_path(
    graph: responses.RequestsMock, target: str
) -> None:
    """Each id goes into the URL as one path segment; ".." would be resolved away (GET
    /users/alex/$value), and the translation comes from the network, not from our schema."""
    graph.add(responses.POST, TRANSLATE, json={"value": [{"sourceId": EWS_ID, "targetId": target}]})

    with pytest.raises((MailboxUnavailable, MessageNotFound)):
        mailbox().capture(ref(), BytesSink())

    assert [c.request.url for c in graph.calls] == [TRANSLATE]


def test_translations_are_remembered_for_a_while(graph: responses.RequestsMock) -> None:
    serve_message(graph)
    box = mailbox()

    box.capture(ref(), BytesSink())
    box.capture(ref(), BytesSink())

    assert len(calls_to(graph, TRANSLATE)) == 1


def test_someone_elses_mailbox_is_read_with_the_shared_scope(graph: responses.RequestsMock) -> None:
    serve_message(graph)
    tokens = StaticTokens()

    mailbox(tokens).capture(ref(reporter="robin@contoso.com"), BytesSink())

    assert tokens.delegated_calls[0][1] == ("Mail.Read", "Mail.Read.Shared", "User.ReadBasic.All")


def test_without_the_users_sign_in_nothing_is_asked_of_graph(graph: responses.RequestsMock) -> None:
    with pytest.raises(Unauthenticated):
        mailbox().capture(ref(token=None), BytesSink())

    assert len(graph.calls) == 0


def test_app_mode_converts_the_id_locally_and_uses_the_application_token(graph: responses.RequestsMock) -> None:
    serve_message(graph, translate=False)
    tokens = StaticTokens()

    mailbox(tokens, graph_auth="app").capture(ref(token=None), BytesSink())

    assert ews_to_rest_id(EWS_ID) == REST_ID == canonical_item_id(REST_ID, "rest").replace("/", "-").replace("+", "_")
    assert calls_to(graph, TRANSLATE) == []
    assert {c.request.headers["Authorization"] for c in graph.calls} == {"Bearer app-token-1"}
    assert tokens.delegated_calls == []


def test_app_mode_refuses_a_reporter_who_does_not_own_the_mailbox(graph: responses.RequestsMock) -> None:
    serve_message(graph, translate=False)
    graph.add(
        responses.GET,
        f"{GRAPH}/users/robin@contoso.com",
        json={"mail": "robin@contoso.com", "userPrincipalName": "robin@contoso.com", "proxyAddresses": []},
        match=[matchers.query_param_matcher({"$select": "mail,userPrincipalName,proxyAddresses"})],
    )

    with pytest.raises(NotYourMailbox):
        mailbox(graph_auth="app").capture(ref(reporter="robin@contoso.com"), BytesSink())

    assert calls_to(graph, VALUE) == []
    assert calls_to(graph, MESSAGE) == []


def test_app_mode_accepts_a_reporter_known_by_another_of_their_addresses(graph: responses.RequestsMock) -> None:
    serve_message(graph, translate=False)
    graph.add(
        responses.GET,
        f"{GRAPH}/users/alex.w@contoso.onmicrosoft.com",
        json={
            "mail": "Alex.Wilber@contoso.com",
            "userPrincipalName": "alex.w@contoso.onmicrosoft.com",
            "proxyAddresses": ["SMTP:Alex.Wilber@contoso.com", "smtp:alex@contoso.com"],
        },
    )

    captured = mailbox(graph_auth="app").capture(ref(reporter="alex.w@contoso.onmicrosoft.com"), BytesSink())

    assert captured.internet_message_id == "<nasty-1@evil.example>"


def test_app_mode_accepts_a_configured_delegate(graph: responses.RequestsMock) -> None:
    serve_message(graph, translate=False)
    time = FakeTime()
    box = GraphMailbox(
        graph_settings(GRAPH, graph_auth="app"),
        StaticTokens(),
        delegates={ALEX: ["Robin@Contoso.com"]},
        sleep=time.sleep,
        clock=time.clock,
    )

    box.capture(ref(reporter="robin@contoso.com"), BytesSink())

    assert calls_to(graph, f"{GRAPH}/users/robin@contoso.com") == []


def test_an_item_graph_does_not_have_is_message_not_found(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, TRANSLATE, json=fixture("translate_ews_to_rest.json"))
    fail(graph, responses.GET, MESSAGE, 404, "error_item_not_found.json")
    fail(graph, responses.GET, VALUE, 404, "error_item_not_found.json")

    with pytest.raises(MessageNotFound):
        mailbox().capture(ref(), BytesSink())


def test_a_malformed_id_is_message_not_found(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, TRANSLATE, json=fixture("translate_malformed.json"))

    with pytest.raises(MessageNotFound):
        mailbox().capture(ref(), BytesSink())

    assert calls_to(graph, VALUE) == []


def test_access_denied_is_not_your_mailbox(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, TRANSLATE, json=fixture("translate_ews_to_rest.json"))
    fail(graph, responses.GET, MESSAGE, 403, "error_access_denied.json")
    fail(graph, responses.GET, VALUE, 403, "error_access_denied.json")

    with pytest.raises(NotYourMailbox):
        mailbox().capture(ref(reporter="robin@contoso.com"), BytesSink())


def test_a_refused_translation_falls_back_to_the_local_conversion_and_graph_decides(
    graph: responses.RequestsMock,
) -> None:
    fail(graph, responses.POST, TRANSLATE, 403, "error_access_denied.json")
    serve_message(graph, translate=False)

    captured = mailbox().capture(ref(), BytesSink())

    assert captured.item_id == EWS_ID


def test_a_refused_translation_is_not_asked_for_again_for_a_while(graph: responses.RequestsMock) -> None:
    fail(graph, responses.POST, TRANSLATE, 403, "error_access_denied.json")
    serve_message(graph, translate=False)
    time = FakeTime()
    box = mailbox(time=time)

    box.capture(ref(), BytesSink())
    box.capture(ref(), BytesSink())
    assert len(calls_to(graph, TRANSLATE)) == 1
    assert len(calls_to(graph, VALUE)) == 2

    time.advance(TRANSLATION_TTL)
    box.capture(ref(), BytesSink())
    assert len(calls_to(graph, TRANSLATE)) == 2


def translate_answers(graph: responses.RequestsMock, status: int, code: str, message: str = "") -> None:
    """Answer translateExchangeIds with Graph's error body (status, code) and nothing else."""
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "r-1"}}}
    graph.add(responses.POST, TRANSLATE, status=status, json=body)


# Where translateExchangeIds is not offered (the v1.0 reference marks US Government L4 and L5 ❌),
# Graph documents no particular answer: these are the ones such an endpoint may give.
MISSING_ACTION_ANSWERS = [
    (400, "BadRequest", "Resource not found for the segment 'translateExchangeIds'."),
    (400, "notSupported", "The request is not supported by the system."),
    (400, "invalidRequest", "Invalid request."),
    (404, "UnknownError", ""),
    (405, "MethodNotAllowed", ""),
    (501, "NotImplemented", "The requested feature isn't implemented."),
]


@pytest.mark.parametrize(("status", "code", "message"), MISSING_ACTION_ANSWERS)
def test_where_translate_exchange_ids_is_not_offered_the_id_is_converted_locally(
    graph: responses.RequestsMock, status: int, code: str, message: str
) -> None:
    translate_answers(graph, status, code, message)
    serve_message(graph, translate=False)
    sink = BytesSink()

    captured = mailbox().capture(ref(), sink)

    assert captured.item_id == EWS_ID
    assert bytes(sink.data) == nasty_mime()
    assert len(calls_to(graph, VALUE)) == 1


def test_a_missing_translate_action_is_not_asked_for_again_for_a_while_by_anyone(
    graph: responses.RequestsMock,
) -> None:
    translate_answers(graph, 501, "NotImplemented")
    serve_message(graph, translate=False)
    time = FakeTime()
    box = mailbox(time=time)

    box.capture(ref(), BytesSink())
    box.capture(ref(reporter="robin@contoso.com"), BytesSink())
    assert len(calls_to(graph, TRANSLATE)) == 1
    assert len(calls_to(graph, VALUE)) == 2

    time.advance(TRANSLATION_TTL)
    box.capture(ref(), BytesSink())
    assert len(calls_to(graph, TRANSLATE)) == 2


def test_falling_back_for_a_missing_translate_action_warns_once(
    graph: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addin_service")
    translate_answers(graph, 400, "BadRequest", "Resource not found for the segment 'translateExchangeIds'.")
    serve_message(graph, translate=False)
    time = FakeTime()
    box = mailbox(time=time)

    for _ in range(3):
        box.capture(ref(), BytesSink())
        time.advance(TRANSLATION_TTL)

    fallbacks = [r for r in caplog.records if "translateExchangeIds is not available" in r.getMessage()]
    assert [r.levelno for r in fallbacks] == [logging.WARNING, logging.INFO, logging.INFO]
    assert getattr(fallbacks[0], "graph_code", None) == "BadRequest"


def test_the_local_conversion_still_lets_graph_refuse_someone_elses_mailbox(graph: responses.RequestsMock) -> None:
    translate_answers(graph, 501, "NotImplemented")
    fail(graph, responses.GET, MESSAGE, 403, "error_access_denied.json")
    fail(graph, responses.GET, VALUE, 403, "error_access_denied.json")
    tokens = StaticTokens()

    with pytest.raises(NotYourMailbox):
        mailbox(tokens).capture(ref(reporter="robin@contoso.com"), BytesSink())

    assert {c.request.headers["Authorization"] for c in graph.calls} == {"Bearer user-token-1"}
    assert tokens.app_calls == 0
    assert {assertion for assertion, _ in tokens.delegated_calls} == {SSO}


def test_a_translate_answer_that_the_id_is_malformed_is_message_not_found_without_fallback(
    graph: responses.RequestsMock,
) -> None:
    translate_answers(graph, 400, "ErrorInvalidIdMalformed", "Id is malformed.")
    serve_message(graph, translate=False)

    with pytest.raises(MessageNotFound):
        mailbox().capture(ref(), BytesSink())

    assert calls_to(graph, VALUE) == []
    assert calls_to(graph, MESSAGE) == []


def test_a_translate_answer_that_the_mailbox_is_unknown_is_not_your_mailbox_without_fallback(
    graph: responses.RequestsMock,
) -> None:
    fail(graph, responses.POST, TRANSLATE, 404, "error_invalid_user.json")
    serve_message(graph, translate=False)

    with pytest.raises(NotYourMailbox):
        mailbox().capture(ref(), BytesSink())

    assert calls_to(graph, VALUE) == []


def test_a_translate_failure_that_is_not_about_the_action_still_fails(graph: responses.RequestsMock) -> None:
    translate_answers(graph, 409, "Conflict")
    serve_message(graph, translate=False)

    with pytest.raises(ServiceError):
        mailbox().capture(ref(), BytesSink())

    assert calls_to(graph, VALUE) == []


def test_the_ca_bundle_is_the_one_the_environment_named_when_the_mailbox_was_built(
    graph: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/contoso-ca.pem")
    box = mailbox()
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read once, at construction
    serve_message(graph)

    box.capture(ref(), BytesSink())

    assert {call.request.req_kwargs["verify"] for call in graph.calls} == {"/etc/ssl/contoso-ca.pem"}


def test_an_unknown_mailbox_is_not_your_mailbox(graph: responses.RequestsMock) -> None:
    fail(
        graph, responses.POST, f"{GRAPH}/users/nobody@contoso.com/translateExchangeIds", 404, "error_invalid_user.json"
    )

    with pytest.raises(NotYourMailbox):
        mailbox().capture(ref(mailbox="nobody@contoso.com"), BytesSink())


def test_a_refused_token_is_renewed_once_and_the_request_repeated(graph: responses.RequestsMock) -> None:
    fail(graph, responses.POST, TRANSLATE, 401, "error_token_expired.json")
    serve_message(graph)
    tokens = StaticTokens()

    mailbox(tokens).capture(ref(), BytesSink())

    assert tokens.forgotten == ["user-token-1"]
    translate_calls = calls_to(graph, TRANSLATE)
    assert [c.request.headers["Authorization"] for c in translate_calls] == [
        "Bearer user-token-1",
        "Bearer user-token-2",
    ]


def test_a_token_refused_twice_means_sign_in_again(graph: responses.RequestsMock) -> None:
    fail(graph, responses.POST, TRANSLATE, 401, "error_token_expired.json")

    with pytest.raises(Unauthenticated):
        mailbox().capture(ref(), BytesSink())

    assert len(calls_to(graph, TRANSLATE)) == 2


def test_an_application_token_refused_twice_is_unavailability(graph: responses.RequestsMock) -> None:
    fail(graph, responses.GET, MESSAGE, 401, "error_token_expired.json")
    fail(graph, responses.GET, VALUE, 401, "error_token_expired.json")

    with pytest.raises(MailboxUnavailable):
        mailbox(graph_auth="app").capture(ref(token=None), BytesSink())


def test_throttling_is_waited_out_as_retry_after_says(graph: responses.RequestsMock) -> None:
    fail(graph, responses.POST, TRANSLATE, 429, "error_throttled.json", retry_after=3)
    serve_message(graph)
    time = FakeTime()

    mailbox(time=time).capture(ref(), BytesSink())

    assert time.sleeps == [3.0]


def test_throttling_longer_than_the_allowed_wait_is_unavailable_with_graphs_advice(
    graph: responses.RequestsMock,
) -> None:
    fail(graph, responses.POST, TRANSLATE, 429, "error_throttled.json", retry_after=45)
    time = FakeTime()

    with pytest.raises(MailboxUnavailable) as raised:
        mailbox(time=time, exchange_max_wait="20").capture(ref(), BytesSink())

    assert raised.value.retry_after == 45
    assert time.sleeps == []


def test_an_unavailable_graph_is_retried_with_backoff_within_the_allowed_wait(
    graph: responses.RequestsMock,
) -> None:
    fail(graph, responses.POST, TRANSLATE, 503, "error_service_unavailable.json")
    time = FakeTime()

    with pytest.raises(MailboxUnavailable):
        mailbox(time=time, exchange_max_wait="5").capture(ref(), BytesSink())

    assert time.sleeps == [0.5, 1.0, 2.0]
    assert sum(time.sleeps) <= 5
    assert len(calls_to(graph, TRANSLATE)) == 4


@pytest.mark.parametrize("status", [302, 307, 409])
def test_an_answer_graph_does_not_document_here_is_unavailability_not_an_internal_error(
    graph: responses.RequestsMock, status: int
) -> None:
    """A redirect is never followed (it would carry the token elsewhere); the reporter is told to
    try again later, as for any other trouble on Exchange's side."""
    graph.add(responses.POST, TRANSLATE, status=status, headers={"Location": "https://elsewhere.example/x"})

    with pytest.raises(MailboxUnavailable) as raised:
        mailbox().capture(ref(), BytesSink())

    assert raised.value.retry_after == 60
    assert len(graph.calls) == 1


@pytest.mark.parametrize("address", ["a/b@contoso.com", "a\\b@contoso.com"])
def test_a_mailbox_graph_cannot_address_is_nobodys_the_reporter_may_read(
    graph: responses.RequestsMock, address: str
) -> None:
    with pytest.raises(NotYourMailbox):
        mailbox().capture(ref(mailbox=address), BytesSink())

    assert len(graph.calls) == 0  # Graph would read the escaped "/" as a path separator


def test_an_unreachable_graph_is_unavailable(graph: responses.RequestsMock) -> None:
    graph.add(responses.POST, TRANSLATE, body=requests.ConnectionError("connection refused"))
    time = FakeTime()

    with pytest.raises(MailboxUnavailable):
        mailbox(time=time, exchange_max_wait="2").capture(ref(), BytesSink())

    assert len(time.sleeps) >= 1


def test_the_sinks_size_limit_passes_through_and_stops_the_download(graph: responses.RequestsMock) -> None:
    serve_message(graph, mime=nasty_mime() * 4)
    sink = BytesSink(limit=100_000)

    with pytest.raises(MessageTooLarge):
        mailbox().capture(ref(), sink)

    assert len(sink.data) <= 100_000


def test_a_declared_size_over_the_limit_is_refused_before_any_byte_is_stored(
    graph: responses.RequestsMock,
) -> None:
    serve_message(graph, mime=nasty_mime(), length=True)
    sink = BytesSink()

    with pytest.raises(MessageTooLarge) as raised:
        mailbox(max_message_bytes="1000").capture(ref(), sink)

    assert raised.value.size == len(nasty_mime())
    assert sink.writes == 0


def test_check_probes_graph_and_in_app_mode_gets_a_token(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/", status=401, json=fixture("error_token_expired.json"))
    tokens = StaticTokens()

    mailbox(tokens, graph_auth="app").check()

    assert tokens.app_calls == 1
    assert "Authorization" not in graph.calls[0].request.headers


def test_check_is_remembered_for_ten_seconds(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/", status=503)
    time = FakeTime()
    box = mailbox(time=time)

    for _ in range(3):
        with pytest.raises(MailboxUnavailable):
            box.check()
    assert len(graph.calls) == 1

    time.advance(10.5)
    with pytest.raises(MailboxUnavailable):
        box.check()
    assert len(graph.calls) == 2


def test_check_fails_when_graph_cannot_be_reached(graph: responses.RequestsMock) -> None:
    graph.add(responses.GET, f"{GRAPH}/", body=requests.ConnectionError("no route to host"))

    with pytest.raises(MailboxUnavailable):
        mailbox().check()


def test_tokens_and_message_bodies_never_reach_the_logs(
    graph: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fail(graph, responses.POST, TRANSLATE, 401, "error_token_expired.json")
    fail(graph, responses.POST, TRANSLATE, 429, "error_throttled.json", retry_after=1)
    serve_message(graph)

    mailbox().capture(ref(), BytesSink())

    logged = caplog.text + " ".join(json.dumps(vars(r), default=str) for r in caplog.records)
    for secret in ("user-token-1", "user-token-2", SSO, "I know where you live", "Menace"):
        assert secret not in logged


def test_all_the_waiting_in_one_capture_shares_one_budget(graph: responses.RequestsMock) -> None:
    fail(graph, responses.POST, TRANSLATE, 429, "error_throttled.json", retry_after=15)
    fail(graph, responses.GET, VALUE, 429, "error_throttled.json", retry_after=10)
    serve_message(graph)  # what comes after the throttling, were it waited for
    time = FakeTime()

    with pytest.raises(MailboxUnavailable) as raised:
        mailbox(time=time, exchange_max_wait="20").capture(ref(), BytesSink())

    assert time.sleeps == [15.0]
    assert raised.value.retry_after == 10


def test_an_empty_mime_body_is_unavailable_not_an_empty_message(graph: responses.RequestsMock) -> None:
    serve_message(graph, translate=True)
    graph.replace(responses.GET, VALUE, body=b"", content_type="text/plain")

    with pytest.raises(MailboxUnavailable, match="without its MIME content"):
        mailbox().capture(ref(), BytesSink())
