"""A first-party proof-of-work challenge: no third party, no image, no personal data.

The server issues `{"id", "algorithm": "sha256-leading-zero-bits", "bits", "expires_in"}`. The client
finds any `solution` (a string of at most 32 characters) such that SHA-256 of `"{id}:{solution}"` (UTF-8)
starts with `bits` zero bits, and sends `{"id", "solution"}` back with the request it retries.

The id is stateless and signed: `expiry.bits.nonce.mac`, the MAC binding it to a scope (the caller's
blind index of what is asked for and the requester's address), so a solution is good for one phone
from one address, once (the limiter remembers used ids until they expire), within `ttl` seconds.
Each extra bit doubles the expected work: 16 bits are ~65 000 hashes (well under a second in a
phone's browser), 20 bits ~1 000 000.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from huirongke.kit.crypto import KeyRing
from huirongke.kit.ratelimit import RateLimiter

ALGORITHM = "sha256-leading-zero-bits"
MAX_SOLUTION = 32


@dataclass(frozen=True)
class Answer:
    id: str
    solution: str


def issue(ring: KeyRing, scope: str, bits: int, ttl: int = 300, now: float | None = None) -> dict[str, Any]:
    expiry = int((time.time() if now is None else now) + ttl)
    body = f"{expiry}.{bits}.{secrets.token_urlsafe(12)}"
    return {
        "id": f"{body}.{ring.mac('challenge', scope, body)[:32]}",
        "algorithm": ALGORITHM,
        "bits": bits,
        "expires_in": ttl,
    }


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def verify(
    ring: KeyRing, limiter: RateLimiter, scope: str, answer: Answer, min_bits: int, now: float | None = None
) -> bool:
    """True once for a genuine, unexpired id of this scope with at least `min_bits` of work."""
    parts = answer.id.split(".")
    if len(parts) != 4 or len(answer.solution) > MAX_SOLUTION:
        return False
    expiry, bits, nonce, mac = parts
    if not (expiry.isdigit() and bits.isdigit()):
        return False
    body = f"{expiry}.{bits}.{nonce}"
    if not secrets.compare_digest(mac, ring.mac("challenge", scope, body)[:32]):
        return False
    remaining = int(expiry) - int(time.time() if now is None else now)
    if remaining <= 0 or int(bits) < min_bits:
        return False
    digest = hashlib.sha256(f"{answer.id}:{answer.solution}".encode()).digest()
    if leading_zero_bits(digest) < int(bits):
        return False
    # Single use: the first verification of an id takes it.
    return limiter.hit(f"challenge:{mac}", 1, remaining + 1) == 0


def solve(challenge: dict[str, Any]) -> str:
    """What a client does (tests and the CLI use it): the first counter that meets the target."""
    target, prefix = int(challenge["bits"]), f"{challenge['id']}:"
    counter = 0
    while leading_zero_bits(hashlib.sha256(f"{prefix}{counter}".encode()).digest()) < target:
        counter += 1
    return str(counter)
