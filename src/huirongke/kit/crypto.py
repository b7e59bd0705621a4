"""Field encryption (AES-GCM under per-subject data keys), key wrapping and HMAC blind indexes.

The master key lives in a file under HRK_DATA_DIR. It never encrypts data directly: it wraps
per-subject data keys and derives the blind-index keys. Destroying a subject's wrapped data key
(crypto-shredding) makes every ciphertext of that subject unreadable, including copies in backups.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE = 12


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, tampering, or a shredded subject."""


def _derive(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        raise DecryptionError("malformed ciphertext")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
    except InvalidTag as exc:
        raise DecryptionError("ciphertext failed authentication") from exc


class KeyRing:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._wrap_key = _derive(master_key, "hrk:wrap:v1")
        self._index_key = _derive(master_key, "hrk:blind-index:v1")
        self._mac_key = _derive(master_key, "hrk:mac:v1")
        self._audit_key = _derive(master_key, "hrk:audit-chain:v1")

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        """Load the master key, creating it (mode 0600) on first start."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    # Data keys -----------------------------------------------------------------
    def new_data_key(self, subject_id: str) -> tuple[bytes, bytes]:
        """Return (plain key, wrapped key) for a new subject."""
        key = AESGCM.generate_key(bit_length=256)
        return key, seal(self._wrap_key, key, b"dk:" + subject_id.encode())

    def unwrap(self, wrapped: bytes, subject_id: str) -> bytes:
        return open_sealed(self._wrap_key, wrapped, b"dk:" + subject_id.encode())

    # Blind index and keyed hashes ---------------------------------------------
    def blind_index(self, kind: str, normalized_value: str) -> str:
        """Deterministic keyed digest for equality lookups; `kind` separates namespaces."""
        msg = f"{kind}\x00{normalized_value}".encode()
        return hmac.new(self._index_key, msg, hashlib.sha256).hexdigest()

    def mac(self, *parts: str) -> str:
        """Keyed digest for secrets we only compare (SMS codes), never reversible offline."""
        return hmac.new(self._mac_key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()

    def audit_key(self) -> bytes:
        """The key of the audit chain's HMACs (`privacy.audit`): derived from the master key and held
        only in memory, so whoever can write the database cannot recompute a valid chain."""
        return self._audit_key


class FieldCipher:
    """Encrypts one subject's fields under their data key. The AAD binds "table.column" and the
    subject, so the generic export can decrypt any declared encrypted column by its name."""

    def __init__(self, data_key: bytes, subject_id: str) -> None:
        self._key = data_key
        self._subject = subject_id.encode()

    def encrypt(self, field: str, value: str) -> bytes:
        return seal(self._key, value.encode(), field.encode() + b":" + self._subject)

    def decrypt(self, field: str, blob: bytes) -> str:
        return open_sealed(self._key, blob, field.encode() + b":" + self._subject).decode()

    def seal_bytes(self, context: str, data: bytes) -> bytes:
        return seal(self._key, data, context.encode() + b":" + self._subject)

    def open_bytes(self, context: str, blob: bytes) -> bytes:
        return open_sealed(self._key, blob, context.encode() + b":" + self._subject)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
