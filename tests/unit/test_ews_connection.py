"""Building the EWS endpoint from settings (addin_service.mail.ews_connection). No network."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import requests
from exchangelib import BASIC, NTLM, OAUTH2
from exchangelib.protocol import CachingProtocol

from addin_service.errors import ConfigError
from addin_service.mail.ews_connection import QUIET_LOGGERS, READ_CHUNK, EwsConnection, pinned_version
from tests.fakes.ews import CLIENT_ID, TENANT, ews_settings

URL = "https://mail.contoso.com/EWS/Exchange.asmx"


@pytest.fixture
def restore_logger_levels() -> Iterator[None]:
    names = [*QUIET_LOGGERS, "exchangelib.util.xml"]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_a_schema_name_pins_the_version_without_asking_the_server() -> None:
    version = pinned_version("Exchange2016")
    assert version.api_version == "Exchange2016" and version.build is not None


def test_a_build_number_pins_the_version() -> None:
    version = pinned_version("15.1.2507.6")
    assert (str(version.build), version.api_version) == ("15.1.2507.6", "Exchange2016")


def test_no_pin_means_ask_the_server() -> None:
    assert pinned_version(None) is None


@pytest.mark.parametrize("value", ["Exchange2099", "fifteen", "15", "99.9.0.0"])
def test_an_unknown_version_is_a_config_error_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        pinned_version(value)
    assert raised.value.variable == "ADDIN_EWS_VERSION"


def test_the_endpoint_comes_from_settings() -> None:
    connection = EwsConnection(ews_settings(URL))
    assert connection.protocol.service_endpoint == URL


def test_basic_and_ntlm_use_the_service_account() -> None:
    basic = EwsConnection(ews_settings(URL, ews_auth="basic"))
    ntlm = EwsConnection(ews_settings(URL, ews_auth="ntlm"))
    assert (basic.protocol.auth_type, ntlm.protocol.auth_type) == (BASIC, NTLM)
    assert basic.protocol.credentials.username == "svc-addin"


def test_oauth_app_asks_the_configured_authority_for_the_ews_host() -> None:
    settings = ews_settings(URL, ews_auth="oauth-app", client_secret="s3cret", authority="https://login.contoso.test")
    connection = EwsConnection(settings)
    credentials = connection.protocol.credentials
    assert connection.protocol.auth_type == OAUTH2
    assert credentials.token_url == f"https://login.contoso.test/{TENANT}/oauth2/v2.0/token"
    assert credentials.scope == ["https://mail.contoso.com/.default"]
    assert credentials.client_id == CLIENT_ID


def test_oauth_on_behalf_of_keeps_the_applications_credentials_for_the_services_own_calls() -> None:
    connection = EwsConnection(ews_settings(URL, ews_auth="oauth-obo", client_secret="s3cret"))
    assert connection.delegated and connection.protocol.auth_type == OAUTH2
    assert connection.protocol.credentials.scope == ["https://mail.contoso.com/.default"]


def test_oauth_on_behalf_of_names_exchange_2013_sp1_unless_a_version_is_pinned() -> None:
    unpinned = EwsConnection(ews_settings(URL, ews_auth="oauth-obo", client_secret="s3cret", ews_version=""))
    pinned = EwsConnection(ews_settings(URL, ews_auth="oauth-obo", client_secret="s3cret"))
    assert unpinned.version().api_version == "Exchange2013_SP1"
    assert pinned.version().api_version == "Exchange2016"


def test_oauth_on_behalf_of_needs_the_client_secret() -> None:
    with pytest.raises(ConfigError) as raised:
        ews_settings(URL, ews_auth="oauth-obo")
    assert raised.value.variable == "ADDIN_CLIENT_SECRET"


def test_the_timeout_setting_is_the_protocol_timeout() -> None:
    assert EwsConnection(ews_settings(URL, ews_timeout="7")).protocol.TIMEOUT == 7


def test_each_connection_owns_its_protocol_and_leaves_exchangelibs_cache_alone() -> None:
    settings = ews_settings(URL)
    first, second = EwsConnection(settings), EwsConnection(settings)
    assert first.protocol is not second.protocol
    assert all(
        protocol not in (first.protocol, second.protocol) for protocol, _ in CachingProtocol._protocol_cache.values()
    )


@pytest.mark.usefixtures("restore_logger_levels")
def test_library_loggers_that_would_write_soap_bodies_or_tokens_are_forced_to_warning() -> None:
    logging.getLogger("exchangelib").setLevel(logging.DEBUG)
    logging.getLogger("exchangelib.util.xml").setLevel(logging.DEBUG)
    logging.getLogger("requests_oauthlib").setLevel(logging.DEBUG)
    EwsConnection(ews_settings(URL))
    for name in ("exchangelib", "exchangelib.util.xml", "requests_oauthlib"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


def _hooked_response(stream: bool) -> requests.Response:
    session = EwsConnection(ews_settings(URL)).protocol.get_session()
    response = requests.Response()
    response.status_code = 200
    response.raw = io.BytesIO(b"x" * (3 * READ_CHUNK))
    for hook in session.hooks["response"]:
        hook(response, stream=stream, timeout=5, verify=True, cert=None, proxies={})
    return response


def test_responses_read_whole_on_our_sessions_are_iterated_in_large_chunks() -> None:
    """exchangelib calls ``response.iter_content()`` without a size (requests' default is 1 byte)."""
    sizes = [len(chunk) for chunk in _hooked_response(stream=False).iter_content()]
    assert sizes == [READ_CHUNK] * 3


def test_streamed_responses_keep_requests_default_for_exchangelibs_streaming_services() -> None:
    assert len(next(_hooked_response(stream=True).iter_content())) == 1


def test_sessions_of_other_exchangelib_users_keep_requests_defaults() -> None:
    assert requests.Session().hooks["response"] == []


def test_sessions_use_the_ca_bundle_the_environment_named_when_the_connection_was_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/contoso-ca.pem")
    connection = EwsConnection(ews_settings(URL))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read once, at construction; sessions come later
    session = connection.protocol.get_session()
    try:
        # requests no longer consults the environment on each request; the decision was made.
        assert (session.verify, session.trust_env) == ("/etc/ssl/contoso-ca.pem", False)
    finally:
        connection.protocol.release_session(session)
        connection.close()
