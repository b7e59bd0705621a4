"""Migration 0003 on a database with data: the clear profile fields of existing users are sealed
under their data keys with the master key, the clear columns (and `personalized_recommendations`)
are gone, nothing else is lost, and the downgrade brings the values back."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from conftest import PG_ADMIN_URL, _pg_available, missing_service
from huirongke.kit.crypto import FieldCipher, KeyRing
from huirongke.kit.db import make_engine
from huirongke.migrate import alembic_config, upgrade

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ALICE = {
    "nickname": "霁月清风",
    "gender": "female",
    "birthday": date(1987, 3, 29),
    "tags": ["蓝鳍金枪鱼", "手冲咖啡师"],
    "region": "甘肃省嘉峪关市",
}
NEEDLES = ["霁月清风", "蓝鳍金枪鱼", "手冲咖啡师", "甘肃省嘉峪关市", "1987-03-29", "独行侠老周"]
NEEDLES += [json.dumps(n)[1:-1] for n in NEEDLES if not n.isascii()]  # the JSON column's \uXXXX form


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own, not the session's: this test walks the migrations itself."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrating.db'}"
        return
    if not _pg_available(PG_ADMIN_URL):
        missing_service("PostgreSQL is not reachable at " + PG_ADMIN_URL)
    name = f"hrk_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def master_key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "master.key"
    path.parent.mkdir()
    path.write_bytes(secrets.token_bytes(32))
    return path


def _insert_user(conn, user_id: str, phone_bidx: str, **profile) -> None:
    conn.execute(
        text(
            "INSERT INTO users (id, phone_bidx, status, nickname, gender, birthday, tags, region, "
            "show_phone, show_region, personalized_recommendations, created_at, updated_at) VALUES "
            "(:id, :bidx, 'active', :nickname, :gender, :birthday, :tags, :region, false, false, true, "
            ":now, :now)"
        ),
        {
            "id": user_id,
            "bidx": phone_bidx,
            "nickname": profile.get("nickname"),
            "gender": profile.get("gender"),
            "birthday": profile.get("birthday"),
            "tags": json.dumps(profile.get("tags", [])),  # what SQLAlchemy's JSON type writes
            "region": profile.get("region"),
            "now": NOW,
        },
    )


def seed_at_0002(url: str, ring: KeyRing) -> None:
    """Three users as 0002 stored them: one with a full profile, one whose data key is missing, one
    with an empty profile; a device and a consent grant hang off the first."""
    engine = make_engine(url)
    with engine.begin() as conn:
        _insert_user(conn, "alice", "bidx-a", **ALICE)
        _insert_user(conn, "bob", "bidx-b", nickname="独行侠老周")
        _insert_user(conn, "carol", "bidx-c")
        for uid in ("alice", "carol"):
            _, wrapped = ring.new_data_key(uid)
            conn.execute(
                text("INSERT INTO data_keys (subject_id, wrapped_key, created_at) VALUES (:u, :w, :now)"),
                {"u": uid, "w": wrapped, "now": NOW},
            )
        conn.execute(
            text(
                "INSERT INTO devices (id, user_id, device_hash, model, first_seen_at, last_seen_at) "
                "VALUES ('d1', 'alice', 'h', 'Redmi K70', :now, :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO consent_events (id, user_id, purpose, granted, policy_version, channel, at) "
                "VALUES ('c1', 'alice', 'personalization', true, 1, 'app', :now)"
            ),
            {"now": NOW},
        )
    engine.dispose()


def cipher_of(conn, ring: KeyRing, user_id: str) -> FieldCipher:
    wrapped = conn.execute(
        text("SELECT wrapped_key FROM data_keys WHERE subject_id = :u"), {"u": user_id}
    ).scalar_one()
    return FieldCipher(ring.unwrap(bytes(wrapped), user_id), user_id)


def opened(conn, ring: KeyRing, user_id: str) -> dict[str, str]:
    row = conn.execute(text("SELECT * FROM users WHERE id = :u"), {"u": user_id}).mappings().one()
    cipher = cipher_of(conn, ring, user_id)
    return {
        c.removesuffix("_enc"): cipher.decrypt(f"users.{c}", bytes(v))
        for c, v in row.items()
        if c.endswith("_enc") and c != "phone_enc" and v is not None
    }


def test_existing_profiles_are_sealed_and_the_clear_columns_dropped(empty_url, master_key, backend):
    ring = KeyRing(master_key.read_bytes())
    upgrade(empty_url, master_key=master_key, target="0002")
    seed_at_0002(empty_url, ring)
    upgrade(empty_url, master_key=master_key, target="0003")

    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("users")}
            assert not columns & {"nickname", "gender", "birthday", "tags", "region"}
            assert "personalized_recommendations" not in columns
            assert opened(conn, ring, "alice") == {
                "nickname": "霁月清风",
                "gender": "female",
                "birthday": "1987-03-29",
                "tags": '["蓝鳍金枪鱼", "手冲咖啡师"]',
                "region": "甘肃省嘉峪关市",
            }
            # a user without a data key gets one, and an empty profile stays empty (no ciphertexts)
            assert opened(conn, ring, "bob") == {"nickname": "独行侠老周"}
            assert opened(conn, ring, "carol") == {}
            # rebuilding `users` must not cascade: the device and the consent are still there
            assert conn.execute(text("SELECT COUNT(*) FROM devices")).scalar_one() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM consent_events")).scalar_one() == 1
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    cells = " ".join(str(v) for v in row)
                    for needle in NEEDLES:
                        assert needle not in cells, f"{needle} in clear in {table}"
    finally:
        engine.dispose()
    if backend == "sqlite":
        # nor in the raw files: the dropped columns' bytes are overwritten (secure_delete), WAL included
        db = Path(empty_url.removeprefix("sqlite:///"))
        for path in (db, Path(f"{db}-wal")):
            data = path.read_bytes() if path.exists() else b""
            for needle in NEEDLES:
                assert needle.encode() not in data, f"{needle} in clear in {path.name}"


def test_the_downgrade_brings_the_values_back(empty_url, master_key):
    ring = KeyRing(master_key.read_bytes())
    upgrade(empty_url, master_key=master_key, target="0002")
    seed_at_0002(empty_url, ring)
    upgrade(empty_url, master_key=master_key, target="0003")
    cfg = alembic_config(empty_url)
    cfg.attributes["master_key"] = master_key
    command.downgrade(cfg, "0002")
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            rows = {
                r.id: r
                for r in conn.execute(
                    text(
                        "SELECT id, nickname, gender, birthday, tags, region, personalized_recommendations "
                        "FROM users"
                    )
                )
            }
    finally:
        engine.dispose()
    alice = rows["alice"]
    assert (alice.nickname, alice.gender, alice.region) == ("霁月清风", "female", "甘肃省嘉峪关市")
    assert str(alice.birthday) == "1987-03-29"
    tags = alice.tags if isinstance(alice.tags, list) else json.loads(alice.tags)
    assert tags == ["蓝鳍金枪鱼", "手冲咖啡师"]
    # the switch comes back as the consent says: granted for alice, off for the others
    assert {uid: bool(r.personalized_recommendations) for uid, r in rows.items()} == {
        "alice": True,
        "bob": False,
        "carol": False,
    }
    assert rows["bob"].nickname == "独行侠老周" and rows["carol"].nickname is None


def test_clear_values_and_no_master_key_stop_the_migration(empty_url, master_key, tmp_path):
    ring = KeyRing(master_key.read_bytes())
    upgrade(empty_url, master_key=master_key, target="0002")
    seed_at_0002(empty_url, ring)
    missing = tmp_path / "elsewhere" / "master.key"
    with pytest.raises(RuntimeError, match=r"master key .*elsewhere.* does not exist"):
        upgrade(empty_url, master_key=missing, target="0003")
    assert not missing.exists(), "the migration must never create a key"


def test_an_empty_database_needs_no_key(empty_url, tmp_path):
    missing = tmp_path / "nowhere" / "master.key"
    upgrade(empty_url, master_key=missing, target="0003")
    assert not missing.exists()
