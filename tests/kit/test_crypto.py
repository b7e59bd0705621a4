"""huirongke.kit.crypto: sealing, per-subject field encryption, key wrapping, blind indexes."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huirongke.kit.crypto import DecryptionError, FieldCipher, KeyRing, open_sealed, seal, sha256_hex


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing(os.urandom(32))


def cipher_for(ring: KeyRing, subject: str) -> tuple[FieldCipher, bytes]:
    key, wrapped = ring.new_data_key(subject)
    return FieldCipher(key, subject), wrapped


@given(st.text(max_size=200))
def test_field_round_trip(value):
    ring = KeyRing(b"k" * 32)
    cipher, _ = cipher_for(ring, "user1")
    blob = cipher.encrypt("users.phone_enc", value)
    assert isinstance(blob, bytes)
    assert cipher.decrypt("users.phone_enc", blob) == value


def test_ciphertext_hides_the_value_and_is_randomised(ring):
    cipher, _ = cipher_for(ring, "user1")
    a = cipher.encrypt("users.phone_enc", "+8613800138000")
    b = cipher.encrypt("users.phone_enc", "+8613800138000")
    assert a != b  # fresh nonce each time
    assert b"13800138000" not in a
    assert len(a) == 1 + 12 + len("+8613800138000") + 16


@pytest.mark.parametrize("position", [0, 1, 5, 13, 20, -1])
def test_tampering_is_detected(ring, position):
    cipher, _ = cipher_for(ring, "user1")
    blob = bytearray(cipher.encrypt("users.phone_enc", "+8613800138000"))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.decrypt("users.phone_enc", bytes(blob))


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + b"\x00" * 20, b"\x02" + b"\x00" * 40])
def test_malformed_ciphertext(ring, blob):
    cipher, _ = cipher_for(ring, "user1")
    with pytest.raises(DecryptionError):
        cipher.decrypt("users.phone_enc", blob)


def test_truncation_is_detected(ring):
    cipher, _ = cipher_for(ring, "user1")
    blob = cipher.encrypt("users.phone_enc", "+8613800138000")
    with pytest.raises(DecryptionError):
        cipher.decrypt("users.phone_enc", blob[:-1])


def test_wrong_subject_fails_even_with_the_same_key(ring):
    key, _ = ring.new_data_key("alice")
    blob = FieldCipher(key, "alice").encrypt("users.phone_enc", "+8613800138000")
    with pytest.raises(DecryptionError):
        FieldCipher(key, "bob").decrypt("users.phone_enc", blob)


def test_wrong_field_fails(ring):
    cipher, _ = cipher_for(ring, "alice")
    blob = cipher.encrypt("users.phone_enc", "+8613800138000")
    with pytest.raises(DecryptionError):
        cipher.decrypt("real_name_verifications.id_number_enc", blob)


def test_other_subject_key_fails(ring):
    alice, _ = cipher_for(ring, "alice")
    bob_key, _ = ring.new_data_key("alice")  # another key for the same id: e.g. after shredding
    blob = alice.encrypt("users.phone_enc", "x")
    with pytest.raises(DecryptionError):
        FieldCipher(bob_key, "alice").decrypt("users.phone_enc", blob)


def test_data_key_wrapping(ring):
    key, wrapped = ring.new_data_key("alice")
    assert len(key) == 32
    assert key not in wrapped
    assert ring.unwrap(wrapped, "alice") == key
    with pytest.raises(DecryptionError):
        ring.unwrap(wrapped, "bob")  # bound to its subject
    with pytest.raises(DecryptionError):
        KeyRing(os.urandom(32)).unwrap(wrapped, "alice")  # and to the master key
    tampered = bytearray(wrapped)
    tampered[-3] ^= 0xFF
    with pytest.raises(DecryptionError):
        ring.unwrap(bytes(tampered), "alice")


def test_seal_and_open_with_aad():
    key = os.urandom(32)
    blob = seal(key, b"payload", b"aad")
    assert open_sealed(key, blob, b"aad") == b"payload"
    with pytest.raises(DecryptionError):
        open_sealed(key, blob, b"other")
    with pytest.raises(DecryptionError):
        open_sealed(os.urandom(32), blob, b"aad")


def test_master_key_must_be_32_bytes():
    for bad in (b"", b"x" * 16, b"x" * 31, b"x" * 33, b"x" * 64):
        with pytest.raises(ValueError):
            KeyRing(bad)


def test_blind_index_is_deterministic_keyed_and_namespaced():
    master = os.urandom(32)
    a, b = KeyRing(master), KeyRing(master)
    value = "+8613800138000"
    idx = a.blind_index("phone", value)
    assert idx == b.blind_index("phone", value)  # same master key, same index: lookups work across restarts
    assert len(idx) == 64 and int(idx, 16) >= 0
    assert value not in idx and "13800138000" not in idx
    assert idx != sha256_hex(value)  # keyed, not a bare hash anyone could compute
    assert idx != a.blind_index("id_number", value)  # namespaces are separate
    assert idx != a.blind_index("phone", "+8613800138001")
    assert idx != KeyRing(os.urandom(32)).blind_index("phone", value)  # depends on the key
    # the separator cannot be forged by shifting text between kind and value
    assert a.blind_index("ph", "one" + value) != idx
    assert a.blind_index("phone", value) != a.mac("phone", value)  # index and MAC keys differ


def test_mac_is_keyed_and_separates_parts(ring):
    assert ring.mac("sms", "bidx", "123456") == ring.mac("sms", "bidx", "123456")
    assert ring.mac("sms", "bidx", "123456") != ring.mac("sms", "bidx", "123457")
    assert ring.mac("sms", "bidx", "123456") != ring.mac("sms", "bidx1", "23456")
    assert ring.mac("sms", "bidx", "123456") != KeyRing(os.urandom(32)).mac("sms", "bidx", "123456")


def test_master_key_file_is_created_0600_and_reused(tmp_path):
    path = tmp_path / "keys" / "master.key"
    ring = KeyRing.from_file(path)
    assert path.exists()
    assert path.stat().st_size == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyRing.from_file(path)
    assert again.blind_index("phone", "x") == ring.blind_index("phone", "x")
    key, wrapped = ring.new_data_key("s")
    assert again.unwrap(wrapped, "s") == key
    other = KeyRing.from_file(tmp_path / "other.key")
    assert other.blind_index("phone", "x") != ring.blind_index("phone", "x")


def test_master_key_file_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "master.key"
        KeyRing.from_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_context_master_key_lives_in_the_data_dir(ctx, settings):
    path = settings.data_dir / "keys" / "master.key"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ctx.ring.blind_index("phone", "x") == KeyRing.from_file(path).blind_index("phone", "x")
