"""Deterministic test messages of a given size: a short text part and a base64 attachment."""

from __future__ import annotations

import base64
import hashlib


def make_message(size: int, seed: int = 0) -> bytes:
    """A MIME message of about ``size`` bytes whose bytes differ per ``seed``."""
    head = (
        b"Received: from mx.fabrikam.example (203.0.113.7) by mail.contoso.com; Tue, 24 Nov 2026 09:00:00 +0000\r\n"
        b"From: Sam Stranger <sam@fabrikam.example>\r\n"
        b"To: Alex Doe <alex@contoso.com>\r\n"
        b"Subject: benchmark message\r\n"
        b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n"
        + f"Message-ID: <bench-{size}-{seed}@fabrikam.example>\r\n".encode()
        + b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
        b'--b1\r\nContent-Type: application/octet-stream; name="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    )
    tail = b"\r\n--b1--\r\n"
    raw_len = max(0, (size - len(head) - len(tail)) * 57 // 78)
    block = hashlib.sha512(f"{seed}".encode()).digest() * 64
    raw = (block * (raw_len // len(block) + 1))[:raw_len]
    encoded = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return head + encoded + tail
