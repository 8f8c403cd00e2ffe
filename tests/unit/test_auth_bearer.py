"""Reading ``Authorization: Bearer`` strictly, with RFC 6750 error codes."""

from __future__ import annotations

import pytest

from addin_service.auth.bearer import MAX_TOKEN_CHARS, MissingCredentials, bearer_from_header
from addin_service.errors import Unauthenticated

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_matched_case_insensitively(scheme: str) -> None:
    assert bearer_from_header(f"{scheme} {TOKEN}") == TOKEN


def test_surrounding_and_repeated_spaces_are_tolerated() -> None:
    assert bearer_from_header(f"  Bearer   {TOKEN}  ") == TOKEN


def test_token68_padding_and_punctuation_are_accepted() -> None:
    assert bearer_from_header("Bearer abc-._~+/XYZ==") == "abc-._~+/XYZ=="


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_credentials_is_a_challenge_without_error_code(value: str | None) -> None:
    with pytest.raises(MissingCredentials) as caught:
        bearer_from_header(value)
    assert caught.value.error == ""
    assert caught.value.status == 401


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Negotiate abc", "NTLM TlRMTVNTUAAB", TOKEN])
def test_another_scheme_is_treated_as_no_credentials(value: str) -> None:
    with pytest.raises(MissingCredentials) as caught:
        bearer_from_header(value)
    assert caught.value.error == ""
    assert "Bearer" in caught.value.detail


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN} {TOKEN}",
        f"Bearer {TOKEN}, Basic dXNlcjpwYXNz",
        "Bearer tök€n",
        "Bearer a=b",
        'Bearer "quoted"',
        "Bearer =abc",
    ],
)
def test_a_malformed_bearer_header_is_invalid_request(value: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        bearer_from_header(value)
    assert caught.value.error == "invalid_request"
    assert not isinstance(caught.value, MissingCredentials)


def test_an_oversized_header_is_refused_without_parsing() -> None:
    with pytest.raises(Unauthenticated) as caught:
        bearer_from_header("Bearer " + "a" * (MAX_TOKEN_CHARS + 100))
    assert caught.value.error == "invalid_request"


def test_refusals_never_echo_the_token() -> None:
    secret_looking = "eyJzZWNyZXQiOiJ5ZXMifQ"
    with pytest.raises(Unauthenticated) as caught:
        bearer_from_header(f"Bearer {secret_looking} extra")
    assert secret_looking not in str(caught.value)
    assert secret_looking not in caught.value.detail
