"""The profile fields (P29, P17): nickname, gender, birthday, tags and region are kept only sealed
under the user's data key (`users.<field>_enc`, AES-GCM with "users.<field>_enc" as associated data,
like the phone). This module is the one place that turns them into text and back.

Encodings of the plaintext (what the export shows once it decrypts a column): text as is, the
birthday as an ISO date, the tags as a JSON list. An empty value is stored as NULL, not as a
ciphertext of nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from huirongke.accounts.models import User
from huirongke.kit.crypto import FieldCipher

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from huirongke.context import AppContext

FIELDS = ("nickname", "gender", "birthday", "tags", "region")


@dataclass(frozen=True)
class Profile:
    nickname: str | None = None
    gender: str | None = None
    birthday: date | None = None
    tags: list[str] = field(default_factory=list)
    region: str | None = None


def column(name: str) -> str:
    """The associated data of a field's ciphertext: its "table.column"."""
    return f"users.{name}_enc"


def encode(name: str, value: Any) -> str | None:
    if value is None or (name == "tags" and not value):
        return None
    if name == "birthday":
        return str(value.isoformat())
    if name == "tags":
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


def decode(name: str, text: str) -> Any:
    if name == "birthday":
        return date.fromisoformat(text)
    if name == "tags":
        return list(json.loads(text))
    return text


def seal(cipher: FieldCipher, name: str, value: Any) -> bytes | None:
    text = encode(name, value)
    return None if text is None else cipher.encrypt(column(name), text)


def open_field(cipher: FieldCipher, name: str, blob: bytes | None) -> Any:
    if blob is None:
        return [] if name == "tags" else None
    return decode(name, cipher.decrypt(column(name), blob))


def birthday(cipher: FieldCipher, blob: bytes | None) -> date | None:
    value: date | None = open_field(cipher, "birthday", blob)
    return value


def read(ctx: AppContext, session: Session, user: User, names: tuple[str, ...] = FIELDS) -> Profile:
    """The user's profile in clear; the data key is unwrapped only when there is something to open."""
    blobs = {n: getattr(user, f"{n}_enc") for n in names}
    if all(b is None for b in blobs.values()):
        return Profile()
    cipher = ctx.keys.cipher(session, user.id)
    return Profile(**{n: open_field(cipher, n, b) for n, b in blobs.items()})


def write(cipher: FieldCipher, user: User, name: str, value: Any) -> None:
    setattr(user, f"{name}_enc", seal(cipher, name, value))
