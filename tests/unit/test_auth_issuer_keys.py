"""Discovery and signing keys: cached, refetched for new keys but never hammered, and Entra
being unreachable is a 503 for the user, not a 401."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import responses

from addin_service.auth.metadata import (
    CACHE_TTL,
    MAX_STALE,
    MIN_REFETCH_INTERVAL,
    IdentityProviderUnavailable,
    IssuerKeys,
)
from addin_service.auth.tokens import TokenRefused, TokenValidator
from addin_service.demo.oidc import EntraTokenFactory
from tests.fakes.entra import (
    CLIENT_ID,
    ENTRA,
    TENANT_DOMAIN,
    TENANT_ID,
    EntraResponses,
    FakeClock,
    settings_for,
)

UPN = "sam.lee@contoso.com"


@pytest.fixture
def factory() -> EntraTokenFactory:
    # A fresh factory per test: these tests rotate and retire keys.
    return EntraTokenFactory(ENTRA, TENANT_ID, tenant_domain=TENANT_DOMAIN, client_id=CLIENT_ID)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def entra(rsps: responses.RequestsMock, factory: EntraTokenFactory) -> EntraResponses:
    return EntraResponses(rsps, factory)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def validator(entra: EntraResponses, clock: FakeClock) -> Iterator[TokenValidator]:
    v = TokenValidator(settings_for(), clock=clock)
    yield v
    v.close()


def test_discovery_and_keys_are_fetched_once_for_many_tokens(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    for n in range(5):
        validator.validate(factory.mint(f"user{n}@contoso.com"))

    assert entra.calls == {"discovery": 1, "jwks": 1}


def test_discovery_and_keys_are_fetched_again_after_an_hour(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    clock.advance(CACHE_TTL - 1)
    validator.validate(factory.mint(UPN))
    assert entra.calls == {"discovery": 1, "jwks": 1}

    clock.advance(2)
    validator.validate(factory.mint(UPN))

    assert entra.calls == {"discovery": 2, "jwks": 2}


def test_a_rotated_key_is_fetched_once_when_a_token_names_it(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    clock.advance(MIN_REFETCH_INTERVAL)
    factory.rotate_key()

    for _ in range(3):
        validator.validate(factory.mint(UPN))

    assert entra.calls == {"discovery": 1, "jwks": 2}


def test_tokens_signed_by_the_previous_key_stay_valid_during_the_overlap(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    old_token = factory.mint(UPN)
    validator.validate(old_token)
    clock.advance(MIN_REFETCH_INTERVAL)
    factory.rotate_key()
    validator.validate(factory.mint(UPN))

    assert validator.validate(old_token).upn == UPN


def test_a_retired_key_stops_validating_once_the_keys_are_refreshed(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    old_token = factory.mint(UPN)
    validator.validate(old_token)
    factory.rotate_key(retire_previous=True)
    clock.advance(CACHE_TTL)

    with pytest.raises(TokenRefused) as caught:
        validator.validate(old_token)

    assert caught.value.reason == "unknown signing key"


def test_an_unknown_kid_soon_after_a_fetch_does_not_fetch_again(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    clock.advance(MIN_REFETCH_INTERVAL - 1)

    with pytest.raises(TokenRefused) as caught:
        validator.validate(factory.mint(UPN, kid="not-a-published-kid"))

    assert caught.value.reason == "unknown signing key"
    assert entra.calls["jwks"] == 1


def test_a_flood_of_made_up_kids_fetches_keys_at_most_once_per_interval(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    forged = [factory.mint(UPN, kid=uuid.uuid4().hex) for _ in range(20)]

    for minute in range(3):
        clock.advance(MIN_REFETCH_INTERVAL)
        for token in forged:
            with pytest.raises(TokenRefused):
                validator.validate(token)
        assert entra.calls["jwks"] == 1 + (minute + 1)


def test_concurrent_first_requests_fetch_discovery_and_keys_once(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    tokens = [factory.mint(f"user{n}@contoso.com") for n in range(8)]
    all_started = threading.Barrier(len(tokens))

    def validate(token: str) -> str:
        all_started.wait(timeout=10)
        return validator.validate(token).upn

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        upns = list(pool.map(validate, tokens))

    assert upns == [f"user{n}@contoso.com" for n in range(8)]
    assert entra.calls == {"discovery": 1, "jwks": 1}


# -- Entra unreachable -------------------------------------------------------------------------


def test_entra_unreachable_at_start_is_unavailable_with_retry_after(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    entra.down = True

    with pytest.raises(IdentityProviderUnavailable) as caught:
        validator.validate(factory.mint(UPN))

    assert caught.value.status == 503
    assert 1 <= caught.value.retry_after <= MIN_REFETCH_INTERVAL + 1


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_an_error_page_from_entra_is_unavailable(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, status: int
) -> None:
    entra.status = status

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))


def test_while_entra_is_unreachable_it_is_asked_at_most_once_per_interval(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    entra.down = True
    for _ in range(10):
        with pytest.raises(IdentityProviderUnavailable):
            validator.validate(factory.mint(UPN))
    assert entra.calls["discovery"] == 1

    entra.down = False
    clock.advance(MIN_REFETCH_INTERVAL)

    assert validator.validate(factory.mint(UPN)).upn == UPN


def test_cached_keys_keep_working_for_a_day_while_entra_is_unreachable(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    entra.down = True
    clock.advance(MAX_STALE - 60)

    assert validator.validate(factory.mint(UPN)).upn == UPN

    clock.advance(120)
    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))


def test_keys_older_than_a_day_are_not_used_even_if_discovery_answers(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    entra.failing = {"jwks"}
    clock.advance(MAX_STALE + 60)

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))

    assert entra.calls == {"discovery": 2, "jwks": 2}


def test_an_unknown_kid_while_entra_is_unreachable_is_unavailable_not_refused(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    entra.down = True
    clock.advance(MIN_REFETCH_INTERVAL)
    factory.rotate_key()

    # The new key may well be genuine: the user did nothing wrong.
    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))


def test_an_unknown_kid_after_a_failed_refresh_is_unavailable_not_refused(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(factory.mint(UPN))
    entra.down = True
    clock.advance(CACHE_TTL)
    validator.validate(factory.mint(UPN))  # the refresh fails; the cached key still serves
    factory.rotate_key()

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))

    assert entra.calls["jwks"] == 2


@pytest.mark.parametrize(
    "override",
    [
        {"jwks_uri": None},
        {"issuer": None},
        {"jwks_uri": "http://keys.example.com/keys"},
        {"jwks_uri": "file:///etc/passwd"},
    ],
)
def test_a_discovery_document_that_cannot_be_trusted_is_unavailable(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator, override: dict[str, Any]
) -> None:
    entra.discovery_overrides = override

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))

    assert entra.calls["jwks"] == 0


def test_a_key_set_without_a_usable_rsa_signing_key_is_unavailable(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    def unusable(document: dict[str, Any]) -> dict[str, Any]:
        [key] = document["keys"]
        return {
            "keys": [
                dict(key, use="enc"),
                dict(key, alg="RS512"),
                dict(key, kty="EC"),
                dict(key, n="AQAB"),  # a 17-bit modulus
                dict(key, d="AQAB"),  # private material has no business here
                dict(key, n="!!!"),
                {"kid": "no-kty"},
                "not-a-key",
            ]
        }

    entra.jwks_transform = unusable

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(factory.mint(UPN))


def test_fetches_carry_a_timeout(factory: EntraTokenFactory, entra: EntraResponses) -> None:
    seen: list[Any] = []

    class RecordingSession(requests.Session):
        def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("timeout"))
            return super().get(url, **kwargs)

    with RecordingSession() as session:
        TokenValidator(settings_for(), session).validate(factory.mint(UPN))

    assert len(seen) == 2
    assert all(isinstance(t, int | float) and 0 < t <= 10 for t in seen)


# -- tenants -----------------------------------------------------------------------------------


def test_a_tenant_configured_by_domain_takes_its_id_from_the_issuer(
    rsps: responses.RequestsMock, factory: EntraTokenFactory, clock: FakeClock
) -> None:
    entra = EntraResponses(rsps, factory, tenant_segment=TENANT_DOMAIN)
    keys = IssuerKeys(settings_for(tenant=TENANT_DOMAIN), clock=clock)
    validator = TokenValidator(settings_for(tenant=TENANT_DOMAIN), keys=keys)

    try:
        caller = validator.validate(factory.mint(UPN))
    finally:
        validator.close()

    assert caller.tenant_id == TENANT_ID
    assert entra.calls == {"discovery": 1, "jwks": 1}
    assert entra.discovery_url == f"{ENTRA}/{TENANT_DOMAIN}/v2.0/.well-known/openid-configuration"


def test_the_tenantid_placeholder_in_a_multi_tenant_document_is_replaced(
    factory: EntraTokenFactory, entra: EntraResponses, validator: TokenValidator
) -> None:
    entra.discovery_overrides = {"issuer": f"{ENTRA}/{{tenantid}}/v2.0"}

    caller = validator.validate(factory.mint(UPN))

    assert caller.tenant_id == TENANT_ID


def test_check_fetches_metadata_and_keys_for_readiness(
    entra: EntraResponses, validator: TokenValidator
) -> None:
    validator.check()
    validator.check()

    assert entra.calls == {"discovery": 1, "jwks": 1}


def test_check_reports_entra_down(entra: EntraResponses, validator: TokenValidator) -> None:
    entra.down = True

    with pytest.raises(IdentityProviderUnavailable):
        validator.check()
