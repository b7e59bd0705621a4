"""profile fields sealed; one personalisation control

The profile fields (nickname, gender, birthday, tags, region) move from clear columns to
`<field>_enc` columns sealed with AES-GCM under each user's data key, exactly as the service seals
them (`accounts/sealed_profile.py`: associated data "users.<field>_enc" + ":" + user id; the
birthday as an ISO date, the tags as a JSON list, empty values as NULL). The clear columns are then
dropped. `users.personalized_recommendations` is dropped too: the privacy-settings switch now reads
and writes the `personalization` consent (P05). Its old value is not turned into consent events:
it defaulted to on without anyone choosing, and a default is not consent.

Why the data move is in the migration and not in `migrate.py` after `upgrade`: the clear columns
must be gone when the revision is stamped, and only the migration can move the values and drop the
columns in the same transaction. It needs the master key to unwrap each user's data key. The key is
the file given to `migrate.upgrade(url, master_key=...)`, else the one the settings name
(`<HRK_DATA_DIR>/keys/master.key`, what `huirongke migrate` and `serve` use). It is read only when
there is something to move, never created: with clear values in the table and no key file, the
migration stops with a message saying where it looked. A user without a data key (none exist:
sign-up creates one) gets one here.

The downgrade restores the schema, and the values too when the key is at hand (required only if
there are sealed values to open). `personalized_recommendations` comes back as the latest
`personalization` consent of each user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:10:00
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from huirongke.kit.crypto import FieldCipher, KeyRing
from huirongke.kit.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FIELDS = ("nickname", "gender", "birthday", "tags", "region")

_clear = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("nickname", sa.String),
    sa.column("gender", sa.String),
    sa.column("birthday", sa.Date),
    sa.column("tags", sa.JSON),
    sa.column("region", sa.String),
    sa.column("personalized_recommendations", sa.Boolean),
)
_sealed = sa.table(
    "users", sa.column("id", sa.String), *(sa.column(f"{f}_enc", sa.LargeBinary) for f in FIELDS)
)
_data_keys = sa.table(
    "data_keys",
    sa.column("subject_id", sa.String),
    sa.column("wrapped_key", sa.LargeBinary),
    sa.column("created_at", UTCDateTime()),
)
_consents = sa.table(
    "consent_events",
    sa.column("id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("purpose", sa.String),
    sa.column("granted", sa.Boolean),
    sa.column("at", UTCDateTime()),
)


def _key_path() -> Path:
    given = context.config.attributes.get("master_key")
    if given is not None:
        return Path(given)
    from huirongke.config import Settings

    return Settings().data_dir / "keys" / "master.key"


def _ring() -> KeyRing:
    path = _key_path()
    if not path.is_file():
        raise RuntimeError(
            f"migration 0003 must encrypt the existing profile fields, but the master key {path} does not "
            "exist. Set HRK_DATA_DIR to the data dir this database belongs to (the key is "
            "<HRK_DATA_DIR>/keys/master.key) and run `huirongke migrate` again."
        )
    return KeyRing(path.read_bytes())


def _cipher(conn: sa.Connection, ring: KeyRing, user_id: str, create: bool) -> FieldCipher:
    wrapped = conn.scalar(sa.select(_data_keys.c.wrapped_key).where(_data_keys.c.subject_id == user_id))
    if wrapped is None:
        if not create:
            raise RuntimeError(f"user {user_id} has sealed profile fields but no data key")
        key, wrapped = ring.new_data_key(user_id)
        conn.execute(
            _data_keys.insert().values(subject_id=user_id, wrapped_key=wrapped, created_at=datetime.now(UTC))
        )
        return FieldCipher(key, user_id)
    return FieldCipher(ring.unwrap(bytes(wrapped), user_id), user_id)


def _encode(name: str, value: object) -> str | None:
    if value is None or (name == "tags" and not value):
        return None
    if name == "birthday":
        assert isinstance(value, date)
        return value.isoformat()
    if name == "tags":
        return json.dumps(list(value), ensure_ascii=False)  # type: ignore[call-overload]
    return str(value)


def _decode(name: str, text: str) -> object:
    if name == "birthday":
        return date.fromisoformat(text)
    if name == "tags":
        return json.loads(text)
    return text


def _drop(table: str, *columns: str) -> None:
    for name in columns:
        if op.get_bind().dialect.name == "sqlite":
            # In place (SQLite ≥ 3.35): a batch copy would drop and recreate `users`, and with foreign
            # keys on, dropping it deletes every row that references it (ON DELETE CASCADE).
            op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{name}"')
        else:
            op.drop_column(table, name)


def upgrade() -> None:
    for name in FIELDS:
        op.add_column("users", sa.Column(f"{name}_enc", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_clear.c.id, *(_clear.c[f] for f in FIELDS))).all()
    todo = [r for r in rows if any(_encode(f, getattr(r, f)) is not None for f in FIELDS)]
    if todo:
        ring = _ring()
        for r in todo:
            cipher = _cipher(conn, ring, r.id, create=True)
            sealed = {}
            for name in FIELDS:
                text = _encode(name, getattr(r, name))
                sealed[f"{name}_enc"] = None if text is None else cipher.encrypt(f"users.{name}_enc", text)
            conn.execute(_sealed.update().where(_sealed.c.id == r.id).values(sealed))
    _drop("users", *FIELDS, "personalized_recommendations")


def downgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.String(length=40), nullable=True))
    op.add_column("users", sa.Column("gender", sa.String(length=8), nullable=True))
    op.add_column("users", sa.Column("birthday", sa.Date(), nullable=True))
    op.add_column("users", sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column("users", sa.Column("region", sa.String(length=64), nullable=True))
    op.add_column(
        "users",
        sa.Column("personalized_recommendations", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(_sealed)).all()
    todo = [r for r in rows if any(getattr(r, f"{f}_enc") is not None for f in FIELDS)]
    if todo:
        ring = _ring()
        for r in todo:
            cipher = _cipher(conn, ring, r.id, create=False)
            clear: dict[str, object] = {}
            for name in FIELDS:
                blob = getattr(r, f"{name}_enc")
                if blob is not None:
                    clear[name] = _decode(name, cipher.decrypt(f"users.{name}_enc", bytes(blob)))
            conn.execute(_clear.update().where(_clear.c.id == r.id).values(clear))
    latest: dict[str, bool] = {}
    events = conn.execute(
        sa.select(_consents.c.user_id, _consents.c.granted)
        .where(_consents.c.purpose == "personalization")
        .order_by(_consents.c.at, _consents.c.id)
    )
    for user_id, granted in events:
        latest[user_id] = bool(granted)
    for user_id in (u for u, g in latest.items() if g):
        conn.execute(_clear.update().where(_clear.c.id == user_id).values(personalized_recommendations=True))
    _drop("users", *(f"{f}_enc" for f in FIELDS))
