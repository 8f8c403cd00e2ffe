"""``manifest build`` inputs: each bad value is refused with a message naming its flag."""

from __future__ import annotations

import pytest

from addin_service.manifest.errors import ManifestInputError
from addin_service.manifest.inputs import derive_app_id, parse_inputs

CLIENT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
URL = "https://report.contoso.com"


def test_public_url_is_normalised_to_lower_case_host_without_trailing_slash() -> None:
    inputs = parse_inputs("https://Report.Contoso.COM/Addin/", CLIENT)

    assert inputs.public_url == "https://report.contoso.com/Addin"
    assert inputs.host == "report.contoso.com"
    assert inputs.taskpane_url == "https://report.contoso.com/Addin/taskpane.html"


def test_default_https_port_is_dropped_and_other_ports_are_kept() -> None:
    assert parse_inputs("https://report.contoso.com:443", CLIENT).host == "report.contoso.com"
    assert parse_inputs("https://localhost:3000", CLIENT).host == "localhost:3000"


def test_sso_resource_and_broker_redirect_use_host_and_port() -> None:
    inputs = parse_inputs("https://localhost:3000/addin", CLIENT.upper())

    assert inputs.client_id == CLIENT
    assert inputs.api_resource == f"api://localhost:3000/{CLIENT}"
    assert inputs.naa_redirect_uri == "brk-multihub://localhost:3000"
    assert inputs.origin == "https://localhost:3000"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://report.contoso.com", "https://"),
        ("ftp://report.contoso.com", "https://"),
        ("report.contoso.com", "https://"),
        ("https://", "host"),
        ("https://report.contoso.com/?tenant=1", "query"),
        ("https://report.contoso.com/#pane", "fragment"),
        ("https://admin:secret@report.contoso.com", "password"),
        ("https://report contoso.com", "spaces"),
        (" https://report.contoso.com", "spaces"),
        ("https://report_contoso.com", "invalid host"),
        ("https://-report.contoso.com", "invalid host"),
        ("https://report.contoso.com:99999", "port"),
        ("https://report.contoso.com/a/../b", "path"),
        ("https://report.contoso.com/a<b", "path"),
        ("https://rapport.exämple.com", "punycode"),
        ("https://[::1x]:8443", "IPv6"),
        ("", "https"),
    ],
)
def test_bad_public_url_is_refused_naming_the_flag(url: str, says: str) -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(url, CLIENT)

    assert caught.value.flag == "--public-url"
    assert str(caught.value).startswith("--public-url: ")
    assert says in str(caught.value)


def test_ip_address_hosts_are_accepted() -> None:
    assert parse_inputs("https://10.0.0.5:8443", CLIENT).host == "10.0.0.5:8443"
    assert parse_inputs("https://[::1]:8443", CLIENT).host == "[::1]:8443"


@pytest.mark.parametrize(
    "client_id", ["", "not-a-guid", "3f2504e0-4f89-11d3-9a0c", "00000000-0000-0000-0000-000000000000"]
)
def test_bad_client_id_is_refused_naming_the_flag(client_id: str) -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(URL, client_id)

    assert caught.value.flag == "--client-id"
    assert "GUID" in str(caught.value)


def test_bad_app_id_is_refused_naming_the_flag() -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(URL, CLIENT, app_id="add-in-1")

    assert caught.value.flag == "--app-id"


def test_app_id_is_derived_deterministically_from_client_id_and_public_url() -> None:
    first = parse_inputs(URL, CLIENT).app_id

    assert parse_inputs(URL + "/", CLIENT.upper()).app_id == first
    assert first == derive_app_id(CLIENT, URL)
    assert parse_inputs("https://other.contoso.com", CLIENT).app_id != first
    assert parse_inputs(URL, "9b2c6d1e-2f3a-4b5c-8d7e-0f1a2b3c4d5e").app_id != first
    assert first != CLIENT


def test_explicit_app_id_is_used_in_canonical_form() -> None:
    given = "{6F9619FF-8B86-D011-B42D-00C04FC964FF}"

    assert parse_inputs(URL, CLIENT, app_id=given).app_id == "6f9619ff-8b86-d011-b42d-00c04fc964ff"


@pytest.mark.parametrize(
    ("version", "unified"),
    [
        ("1", "1.0.0"),
        ("1.2", "1.2.0"),
        ("1.2.3", "1.2.3"),
        ("1.2.3.0", "1.2.3"),
        ("99999.0.7.0", "99999.0.7"),
    ],
)
def test_version_gives_the_unified_manifest_three_numbers(version: str, unified: str) -> None:
    inputs = parse_inputs(URL, CLIENT, version=version)

    assert (inputs.version, inputs.unified_version) == (version, unified)


@pytest.mark.parametrize("version", ["1.2.3.4", "01.0", "1.2.3.4.5", "123456", "v1", "1..2", ""])
def test_bad_version_is_refused_naming_the_flag(version: str) -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(URL, CLIENT, version=version)

    assert caught.value.flag == "--version"


@pytest.mark.parametrize("name", ["", "   ", "x" * 31, "Report\u0007harassment"])
def test_bad_display_name_is_refused_naming_the_flag(name: str) -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(URL, CLIENT, display_name=name)

    assert caught.value.flag == "--display-name"


@pytest.mark.parametrize(
    "support", ["http://help.contoso.com", "help.contoso.com", "https://a:b@help.contoso.com"]
)
def test_bad_support_url_is_refused_naming_the_flag(support: str) -> None:
    with pytest.raises(ManifestInputError) as caught:
        parse_inputs(URL, CLIENT, support_url=support)

    assert caught.value.flag == "--support-url"


def test_support_url_defaults_to_the_public_url() -> None:
    assert parse_inputs(URL + "/addin", CLIENT).support_url == "https://report.contoso.com/addin/"
