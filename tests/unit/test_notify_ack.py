""""I have seen this" links: signed, expiring, keyed from the evidence key, tamper-evident."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from addin_service.evidence.keys import LedgerKeys
from addin_service.notify.ack import AckLinks, ExpiredAckToken, InvalidAckToken, evidence_key_material
from addin_service.settings import Settings

KEY = hashlib.sha256(b"row").hexdigest()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def links(secret: bytes = b"k" * 32, clock: Clock | None = None, valid: int = 3600) -> AckLinks:
    return AckLinks(lambda: secret, "https://reports.contoso.com/", valid_seconds=valid, clock=clock or Clock())


def test_a_link_points_at_the_ack_page_and_verifies_to_its_row() -> None:
    maker = links()
    url = maker.link(KEY)

    assert url.startswith("https://reports.contoso.com/ack/v1.")
    assert maker.verify(url.rsplit("/", 1)[1]) == KEY


def test_a_link_expires() -> None:
    clock = Clock()
    maker = links(clock=clock, valid=3600)
    token = maker.token(KEY)
    clock.now += 3601

    with pytest.raises(ExpiredAckToken):
        maker.verify(token)


@pytest.mark.parametrize("part", [1, 2, 3])
def test_changing_any_part_of_a_token_breaks_it(part: int) -> None:
    maker = links()
    pieces = maker.token(KEY).split(".")
    pieces[part] = ("A" if pieces[part][0] != "A" else "B") + pieces[part][1:]
    if part == 2:
        pieces[2] = str(int(pieces[2].lstrip("AB") or "0") + 86_400)

    with pytest.raises(InvalidAckToken):
        maker.verify(".".join(pieces))


@pytest.mark.parametrize("token", ["", "v1", "v2.a.1.b", "v1.!!.1.x", "v1.a.b.c", "v1.a.99999999999999.c"])
def test_garbage_is_not_a_token(token: str) -> None:
    with pytest.raises(InvalidAckToken):
        links().verify(token)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def spare_bit_flipped(text: str) -> str:
    """The same bytes with a different last character: its lowest bit is padding, not data."""
    return text[:-1] + ALPHABET[ALPHABET.index(text[-1]) ^ 1]


@pytest.mark.parametrize(
    "respell",
    [
        lambda p: [p[0], p[1] + "=", p[2], p[3]],
        lambda p: [p[0], p[1], p[2], p[3] + "=="],
        lambda p: [p[0], p[1], "0" + p[2], p[3]],
        lambda p: [p[0], p[1], p[2], spare_bit_flipped(p[3])],
    ],
    ids=["padded row", "padded signature", "leading zero", "spare bits"],
)
def test_a_genuine_token_spelled_another_way_is_refused(respell: Callable[[list[str]], list[str]]) -> None:
    """One link per notification: equivalent spellings of a token are not tokens."""
    maker = links()
    pieces = maker.token(KEY).split(".")

    with pytest.raises(InvalidAckToken):
        maker.verify(".".join(respell(pieces)))


@pytest.mark.parametrize(
    "expiry", ["\N{SUPERSCRIPT TWO}", "\N{ARABIC-INDIC DIGIT ONE}" * 10, "\N{FULLWIDTH DIGIT ONE}" * 10]
)
def test_an_expiry_in_other_digits_is_malformed_not_an_error(expiry: str) -> None:
    pieces = links().token(KEY).split(".")
    pieces[2] = expiry

    with pytest.raises(InvalidAckToken):
        links().verify(".".join(pieces))


def test_a_token_from_another_key_is_refused() -> None:
    token = links(secret=b"a" * 32).token(KEY)

    with pytest.raises(InvalidAckToken):
        links(secret=b"b" * 32).verify(token)


def test_the_key_comes_from_the_evidence_signing_key_and_is_not_that_key(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "ADDIN_EVIDENCE_URL": f"file://{tmp_path / 'evidence'}",
            "ADDIN_EXCHANGE": "ews",
            "ADDIN_EWS_URL": "https://mail.contoso.com/EWS/Exchange.asmx",
            "ADDIN_EWS_AUTH": "oauth-app",
            "ADDIN_CLIENT_SECRET": "x",
            "ADDIN_TENANT_ID": "contoso.com",
            "ADDIN_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        },
        cwd=tmp_path,
    )
    material = evidence_key_material(settings)
    first = links(secret=material())
    token = first.token(KEY)

    # Another process with the same evidence folder checks the same links.
    assert links(secret=evidence_key_material(settings)()).verify(token) == KEY
    signer = LedgerKeys(tmp_path / "evidence" / "ledger").signer()
    assert material() == signer.private_key.private_bytes_raw()
    assert first._secret() != material()  # HKDF output, never the signing key itself


def test_links_made_for_one_purpose_never_verify_for_another() -> None:
    ack = links()
    case = AckLinks(lambda: b"k" * 32, "https://reports.contoso.com/", purpose="case", clock=Clock())

    with pytest.raises(InvalidAckToken):
        ack.verify(case.token(KEY))
    with pytest.raises(InvalidAckToken):
        case.verify(ack.token(KEY))
    assert case.verify(case.token(KEY)) == KEY


def test_an_expired_case_link_says_so() -> None:
    from addin_service.notify.case_page import case_link

    clock = Clock()
    case = AckLinks(lambda: b"k" * 32, "https://reports.contoso.com/", purpose="case", valid_seconds=60, clock=clock)
    url = case_link(case, "HR-2026-ABCDEFGH", KEY)
    clock.now += 61

    assert url.startswith("https://reports.contoso.com/cases/HR-2026-ABCDEFGH?access=v1.")
    with pytest.raises(ExpiredAckToken):
        case.verify(url.split("access=", 1)[1])
