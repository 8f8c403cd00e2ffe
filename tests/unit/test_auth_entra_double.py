"""The Entra double's token factory produces what Entra ID produces (no I/O here)."""

from __future__ import annotations

import base64
import hashlib

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from addin_service.demo.oidc import EntraTokenFactory
from tests.fakes.entra import CLIENT_ID, ENTRA, TENANT_DOMAIN, TENANT_ID

UPN = "robin.ng@contoso.com"
V2_ACCESS_TOKEN_CLAIMS = {
    "aud",
    "iss",
    "iat",
    "nbf",
    "exp",
    "aio",
    "azp",
    "azpacr",
    "name",
    "oid",
    "preferred_username",
    "rh",
    "scp",
    "sid",
    "sub",
    "tid",
    "uti",
    "ver",
}


@pytest.fixture(scope="module")
def factory() -> EntraTokenFactory:
    return EntraTokenFactory(ENTRA, TENANT_ID, tenant_domain=TENANT_DOMAIN, client_id=CLIENT_ID)


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_a_minted_token_has_the_v2_access_token_shape(factory: EntraTokenFactory) -> None:
    token = factory.mint(UPN)

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})

    assert header == {"typ": "JWT", "alg": "RS256", "kid": factory.signing_kid}
    assert set(claims) == V2_ACCESS_TOKEN_CLAIMS
    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == f"{ENTRA}/{TENANT_ID}/v2.0"
    assert claims["tid"] == TENANT_ID
    assert claims["ver"] == "2.0"
    assert claims["scp"] == "access_as_user"
    assert claims["preferred_username"] == UPN
    assert claims["name"] == "Robin Ng"
    assert claims["exp"] - claims["iat"] == 3600


def test_a_minted_token_verifies_with_the_published_key(factory: EntraTokenFactory) -> None:
    [jwk] = factory.jwks()["keys"]
    key = RSAAlgorithm.from_jwk(jwk)
    assert isinstance(key, RSAPublicKey)

    claims = jwt.decode(factory.mint(UPN), key, algorithms=["RS256"], audience=CLIENT_ID)

    assert claims["oid"] == factory.user(UPN).oid


def test_the_kid_is_the_thumbprint_of_the_published_certificate(factory: EntraTokenFactory) -> None:
    [jwk] = factory.jwks()["keys"]
    der = base64.b64decode(jwk["x5c"][0])
    certificate = x509.load_der_x509_certificate(der)
    public = certificate.public_key()
    assert isinstance(public, RSAPublicKey)

    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der, usedforsecurity=False).digest()).rstrip(b"=")
    assert jwk["kid"] == jwk["x5t"] == thumbprint.decode()
    assert public.public_numbers().n == int.from_bytes(_b64url_decode(jwk["n"]), "big")
    assert jwk["kty"] == "RSA" and jwk["use"] == "sig"
    assert jwk["issuer"] == f"{ENTRA}/{TENANT_ID}/v2.0"
    assert public.key_size == 2048


def test_one_address_is_one_person_across_tokens(factory: EntraTokenFactory) -> None:
    first = jwt.decode(factory.mint(UPN), options={"verify_signature": False})
    again = jwt.decode(factory.mint(UPN.upper()), options={"verify_signature": False})
    other = jwt.decode(factory.mint("kim@contoso.com"), options={"verify_signature": False})

    assert first["oid"] == again["oid"] != other["oid"]
    assert first["uti"] != again["uti"]


def test_registered_users_keep_their_name_and_object_id(factory: EntraTokenFactory) -> None:
    user = factory.add_user(
        "Dana@Contoso.com", name="Dana Q. Public", oid="11111111-2222-3333-4444-555555555555"
    )

    claims = jwt.decode(factory.mint("dana@contoso.com"), options={"verify_signature": False})

    assert (claims["name"], claims["oid"]) == (user.name, user.oid) == ("Dana Q. Public", user.oid)


def test_the_subject_is_pairwise_per_audience(factory: EntraTokenFactory) -> None:
    ours = jwt.decode(factory.mint(UPN), options={"verify_signature": False})
    graph = jwt.decode(
        factory.mint(UPN, audience="https://graph.microsoft.com"), options={"verify_signature": False}
    )

    assert ours["sub"] != graph["sub"]
    assert ours["oid"] == graph["oid"]


def test_extra_claims_add_replace_and_remove(factory: EntraTokenFactory) -> None:
    token = factory.mint(
        UPN, scopes=(), extra_claims={"roles": ["x"], "name": "Other", "preferred_username": None}
    )

    claims = jwt.decode(token, options={"verify_signature": False})

    assert claims["roles"] == ["x"]
    assert claims["name"] == "Other"
    assert "preferred_username" not in claims
    assert "scp" not in claims


def test_discovery_for_the_tenant_id_and_for_its_domain_name_the_same_issuer(
    factory: EntraTokenFactory,
) -> None:
    by_id = factory.discovery_document(TENANT_ID)
    by_domain = factory.discovery_document(TENANT_DOMAIN)

    assert by_id == by_domain
    assert by_id["issuer"] == f"{ENTRA}/{TENANT_ID}/v2.0"
    assert by_id["jwks_uri"] == f"{ENTRA}/{TENANT_ID}/discovery/v2.0/keys"
    assert by_id["token_endpoint"] == f"{ENTRA}/{TENANT_ID}/oauth2/v2.0/token"
    assert by_id["authorization_endpoint"] == f"{ENTRA}/{TENANT_ID}/oauth2/v2.0/authorize"
    assert by_id["id_token_signing_alg_values_supported"] == ["RS256"]


def test_the_multi_tenant_document_carries_the_tenantid_placeholder(factory: EntraTokenFactory) -> None:
    assert factory.discovery_document("organizations")["issuer"] == f"{ENTRA}/{{tenantid}}/v2.0"


def test_an_unknown_tenant_has_no_document(factory: EntraTokenFactory) -> None:
    with pytest.raises(KeyError):
        factory.discovery_document("fabrikam.onmicrosoft.com")


def test_rotation_keeps_the_previous_key_published_until_retired() -> None:
    factory = EntraTokenFactory(ENTRA, TENANT_ID)
    first = factory.signing_kid

    second = factory.rotate_key()
    assert factory.kids == (first, second)
    assert jwt.get_unverified_header(factory.mint(UPN))["kid"] == second

    factory.retire_key(first)
    remaining: tuple[str, ...] = factory.kids
    assert remaining == (second,)


def test_rotation_can_retire_the_previous_key_at_once() -> None:
    factory = EntraTokenFactory(ENTRA, TENANT_ID)

    new = factory.rotate_key(retire_previous=True)

    assert factory.kids == (new,)


def test_a_published_key_is_not_used_for_signing_yet() -> None:
    factory = EntraTokenFactory(ENTRA, TENANT_ID)
    signing = factory.signing_kid

    ahead = factory.publish_key()

    assert factory.kids == (signing, ahead)
    assert jwt.get_unverified_header(factory.mint(UPN))["kid"] == signing


def test_the_signing_key_cannot_be_retired() -> None:
    factory = EntraTokenFactory(ENTRA, TENANT_ID)

    with pytest.raises(ValueError, match="rotate"):
        factory.retire_key(factory.signing_kid)


def test_forgeries_are_what_they_claim(factory: EntraTokenFactory) -> None:
    unsigned = factory.forge_unsigned(UPN)
    wrong_key = factory.forge_with_unknown_key(UPN)

    assert unsigned.endswith(".") and jwt.get_unverified_header(unsigned)["alg"] == "none"
    assert jwt.get_unverified_header(wrong_key)["kid"] == factory.signing_kid
    published = factory.public_key(factory.signing_kid)
    assert published is not None
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(wrong_key, published, algorithms=["RS256"], audience=CLIENT_ID)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(factory.forge_expired(UPN), options={"verify_signature": False, "verify_exp": True})
