"""Token validation: what a caller gets for a good token, and every way a token is refused.

Entra ID is served through ``responses`` at its real URLs from the double's token factory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from addin_service.auth.bearer import MAX_TOKEN_CHARS, MissingCredentials
from addin_service.auth.metadata import IdentityProviderUnavailable
from addin_service.auth.tokens import BearerAuthenticator, InsufficientScope, TokenRefused, TokenValidator
from addin_service.demo.oidc import EntraTokenFactory
from addin_service.errors import Unauthenticated, Unavailable
from tests.fakes.entra import CLIENT_ID, ENTRA, OTHER_TENANT_ID, TENANT_ID, EntraResponses, settings_for

UPN = "Alex.Doe@Contoso.com"


@pytest.fixture(scope="module")
def factory() -> EntraTokenFactory:
    # Read-only in this module: key rotation is exercised in test_auth_issuer_keys.py.
    return EntraTokenFactory(ENTRA, TENANT_ID, client_id=CLIENT_ID)


@pytest.fixture
def entra(factory: EntraTokenFactory) -> Iterator[EntraResponses]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield EntraResponses(rsps, factory)


@pytest.fixture
def validator(entra: EntraResponses) -> Iterator[TokenValidator]:
    v = TokenValidator(settings_for())
    yield v
    v.close()


def refused(validator: TokenValidator, token: str, reason: str) -> TokenRefused:
    """Validate ``token`` expecting a refusal for ``reason`` (the check that must catch it)."""
    with pytest.raises(TokenRefused) as caught:
        validator.validate(token)
    assert caught.value.reason == reason
    assert caught.value.error == "invalid_token"
    return caught.value


# -- a good token ------------------------------------------------------------------------------


def test_a_valid_token_identifies_the_caller(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    token = factory.mint(UPN, extra_claims={"name": "Alex Doe"})

    caller = validator.validate(token)

    assert caller.upn == "alex.doe@contoso.com"
    assert caller.object_id == factory.user(UPN).oid
    assert caller.tenant_id == TENANT_ID
    assert caller.name == "Alex Doe"
    assert caller.scopes == ("access_as_user",)
    assert caller.token == token


def test_the_caller_never_shows_its_token(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    token = factory.mint(UPN)

    caller = validator.validate(token)

    assert token not in repr(caller)
    assert token not in str(caller)


def test_the_app_id_uri_is_an_accepted_audience(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    assert validator.validate(factory.mint(UPN, audience=f"api://{CLIENT_ID}")).upn == "alex.doe@contoso.com"


def test_more_scopes_than_required_are_fine(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    caller = validator.validate(factory.mint(UPN, scopes=("User.Read", "access_as_user")))

    assert caller.has_scope("access_as_user")
    assert caller.scopes == ("User.Read", "access_as_user")


def test_upn_claim_is_used_when_preferred_username_is_not_an_address(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, extra_claims={"preferred_username": "+1 555 0100", "upn": "Alex@Contoso.com"})

    assert validator.validate(token).upn == "alex@contoso.com"


def test_a_missing_display_name_falls_back_to_the_address(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    assert validator.validate(factory.mint(UPN, extra_claims={"name": None})).name == "alex.doe@contoso.com"


def test_expiry_within_the_leeway_is_tolerated(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    assert validator.validate(factory.mint(UPN, expires_in=-30)).upn == "alex.doe@contoso.com"


def test_not_before_within_the_leeway_is_tolerated(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, not_before=datetime.now(UTC) + timedelta(seconds=30))

    assert validator.validate(token).upn == "alex.doe@contoso.com"


def test_the_authenticator_reads_the_header_and_validates(
    factory: EntraTokenFactory, entra: EntraResponses
) -> None:
    authenticator = BearerAuthenticator(settings_for())
    try:
        caller = authenticator.authenticate(f"Bearer {factory.mint(UPN)}")
        with pytest.raises(MissingCredentials):
            authenticator.authenticate(None)
    finally:
        authenticator.close()

    assert caller.upn == "alex.doe@contoso.com"


# -- forgeries and wrong tokens ----------------------------------------------------------------


def test_alg_none_is_refused(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    refused(validator, factory.forge_unsigned(UPN), "algorithm not allowed")


def test_hs256_keyed_with_the_public_key_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.forge_hs256_with_public_key(UPN)
    signing_input, _, signature = token.rpartition(".")
    # The forgery is the real attack: a valid HMAC keyed with the published public key's PEM.
    expected = hmac.new(factory.public_key_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature

    refused(validator, token, "algorithm not allowed")


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_refused_even_with_a_valid_signature(
    factory: EntraTokenFactory, validator: TokenValidator, alg: str
) -> None:
    refused(validator, factory.mint(UPN, alg=alg), "algorithm not allowed")


def test_a_token_signed_by_an_unpublished_key_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    refused(validator, factory.forge_with_unknown_key(UPN), "bad signature")


def test_a_token_expired_beyond_the_leeway_is_refused_and_says_so(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    error = refused(validator, factory.forge_expired(UPN, seconds_ago=120), "expired")

    assert "expired" in error.detail


def test_a_token_not_yet_valid_beyond_the_leeway_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, not_before=datetime.now(UTC) + timedelta(minutes=5))

    refused(validator, token, "not yet valid")


def test_a_token_issued_in_the_future_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    future = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())

    refused(validator, factory.mint(UPN, extra_claims={"iat": future}), "not yet valid")


def test_a_token_from_another_tenant_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    # Entra signs every tenant's tokens with the same keys: only iss/tid tell them apart.
    refused(validator, factory.mint(UPN, tenant=OTHER_TENANT_ID), "wrong issuer")


def test_a_tid_that_disagrees_with_the_issuer_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    error = refused(validator, factory.mint(UPN, extra_claims={"tid": OTHER_TENANT_ID}), "wrong tenant")

    assert "different organisation" in error.detail


@pytest.mark.parametrize(
    "issuer",
    [
        f"{ENTRA}/{TENANT_ID}/v2.0/",
        f"{ENTRA}/{TENANT_ID}",
        f"https://sts.windows.net/{TENANT_ID}/",
        f"https://login.microsoftonline.com.evil.example/{TENANT_ID}/v2.0",
    ],
)
def test_the_issuer_must_match_exactly(
    factory: EntraTokenFactory, validator: TokenValidator, issuer: str
) -> None:
    refused(validator, factory.mint(UPN, extra_claims={"iss": issuer}), "wrong issuer")


def test_a_v1_token_is_refused_with_a_hint_for_the_administrator(
    factory: EntraTokenFactory, validator: TokenValidator, caplog: pytest.LogCaptureFixture
) -> None:
    token = factory.mint(UPN, extra_claims={"iss": f"https://sts.windows.net/{TENANT_ID}/", "ver": "1.0"})

    with caplog.at_level(logging.INFO, logger="addin_service.auth"):
        refused(validator, token, "wrong issuer")

    assert any("requestedAccessTokenVersion" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("audience", ["https://graph.microsoft.com", "00000000-0000-0000-0000-000000000001"])
def test_a_token_for_another_audience_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator, audience: str
) -> None:
    refused(validator, factory.mint(UPN, audience=audience), "wrong audience")


def test_a_list_of_audiences_is_refused(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    aud = [CLIENT_ID, "https://graph.microsoft.com"]
    refused(validator, factory.mint(UPN, extra_claims={"aud": aud}), "audience is not a single value")


def test_a_token_without_the_required_scope_is_insufficient_scope(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    with pytest.raises(InsufficientScope) as caught:
        validator.validate(factory.mint(UPN, scopes=("User.Read",)))

    assert caught.value.error == "insufficient_scope"
    assert caught.value.scope == "access_as_user"


def test_an_app_only_token_is_refused_as_insufficient_scope(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint_app_token(CLIENT_ID, CLIENT_ID, roles=("Reports.Write",))

    with pytest.raises(InsufficientScope):
        validator.validate(token)


def test_a_scope_merely_containing_the_name_does_not_count(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    with pytest.raises(InsufficientScope):
        validator.validate(factory.mint(UPN, scopes=("access_as_user_readonly",)))


def test_a_token_without_a_usable_address_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, extra_claims={"preferred_username": "alex", "upn": None, "unique_name": None})

    assert "mailbox" in refused(validator, token, "no username claim that is an email address").detail


def test_the_email_claim_is_never_trusted_as_the_address(
    factory: EntraTokenFactory, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, extra_claims={"preferred_username": None, "email": "ceo@contoso.com"})

    refused(validator, token, "no username claim that is an email address")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud", "tid", "oid"])
def test_a_token_missing_a_required_claim_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator, claim: str
) -> None:
    refused(validator, factory.mint(UPN, extra_claims={claim: None}), f"missing claim {claim}")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_that_is_a_string_of_digits_is_refused(
    factory: EntraTokenFactory, validator: TokenValidator, claim: str
) -> None:
    """PyJWT reads "1893456000" as a number; RFC 7519 says a NumericDate is a JSON number."""
    valid_value = {"exp": int(time.time()) + 600, "nbf": int(time.time()) - 60, "iat": int(time.time()) - 60}[claim]

    token = factory.mint(UPN, extra_claims={claim: str(valid_value)})

    refused(validator, token, f"{claim} is not a NumericDate")


def test_an_oid_that_is_not_a_guid_is_refused(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    refused(validator, factory.mint(UPN, extra_claims={"oid": "alex"}), "oid is not a GUID")


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("not-a-token", "not a compact JWS"),
        ("a.b", "not a compact JWS"),
        ("a.b.c.d", "not a compact JWS"),
        ("!!!.???.***", "not a compact JWS"),
        ("eyJhbGciOiJSUzI1NiJ9.e30", "not a compact JWS"),
        ("bm90IGpzb24.e30.c2ln", "unreadable header"),  # header is not JSON
        ("W10.e30.c2ln", "unreadable header"),  # header is a JSON list
        ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "no usable kid"),  # RS256 but no kid
    ],
)
def test_garbage_is_refused_without_asking_entra(
    entra: EntraResponses, validator: TokenValidator, garbage: str, reason: str
) -> None:
    refused(validator, garbage, reason)

    assert entra.calls == {"discovery": 0, "jwks": 0}


def test_an_empty_token_is_missing_credentials(validator: TokenValidator) -> None:
    with pytest.raises(MissingCredentials):
        validator.validate("")


def test_an_oversized_token_is_refused_without_asking_entra(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    token = factory.mint(UPN, extra_claims={"padding": "x" * MAX_TOKEN_CHARS})

    refused(validator, token, "oversize")

    assert entra.calls == {"discovery": 0, "jwks": 0}


def test_a_key_pinned_to_another_issuer_is_not_trusted(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    def pin_elsewhere(document: dict[str, object]) -> dict[str, object]:
        keys = document["keys"]
        assert isinstance(keys, list)
        return {"keys": [dict(k, issuer=f"{ENTRA}/{OTHER_TENANT_ID}/v2.0") for k in keys]}

    entra.jwks_transform = pin_elsewhere

    refused(validator, factory.mint(UPN), "key is pinned to another issuer")


# -- what callers and logs see -----------------------------------------------------------------


def test_refusals_never_echo_the_token(factory: EntraTokenFactory, validator: TokenValidator) -> None:
    forged = [
        factory.forge_unsigned(UPN),
        factory.forge_expired(UPN),
        factory.mint(UPN, audience="https://graph.microsoft.com"),
        factory.mint(UPN, scopes=()),
    ]
    for token in forged:
        with pytest.raises(Unauthenticated) as caught:
            validator.validate(token)
        for part in token.split("."):
            if part:
                assert part not in str(caught.value)


def test_logs_never_hold_a_token(
    factory: EntraTokenFactory, validator: TokenValidator, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = factory.mint(UPN), factory.forge_with_unknown_key(UPN)

    with caplog.at_level(logging.DEBUG):
        validator.validate(good)
        refused(validator, bad, "bad signature")

    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        for token in (good, bad):
            assert token.split(".")[1] not in text
            assert token.split(".")[2] not in text
    assert any(getattr(r, "reason", None) == "bad signature" for r in caplog.records)


def test_entra_down_is_unavailable_not_the_users_fault(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    entra.down = True

    with pytest.raises(IdentityProviderUnavailable) as caught:
        validator.validate(factory.mint(UPN))

    assert isinstance(caught.value, Unavailable)
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1
