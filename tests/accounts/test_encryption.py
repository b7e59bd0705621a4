"""P17 at rest: the phone number and the real-name data are never stored in clear, in any column of
any table, nor (on SQLite) anywhere in the database files or the data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from conftest import auth, sign_up
from huirongke.kit.idcard import checksum_char

PHONE = "13800138000"
PHONE_FORMS = ["13800138000", "+8613800138000", "8613800138000", "138 0013 8000", "138-0013-8000"]
ID17 = "11010519491231002"
ID_NUMBER = ID17 + checksum_char(ID17)
NAME = "司马相如"


def all_rows(ctx) -> list[tuple[str, str, Any]]:
    """(table, column, value) for every cell of every table in the database."""
    cells: list[tuple[str, str, Any]] = []
    with ctx.db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result.mappings():
                cells.extend((table, column, value) for column, value in row.items())
    return cells


def as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def assert_absent(ctx, needles: list[str]) -> None:
    cells = all_rows(ctx)
    assert cells, "the database should not be empty"
    for table, column, value in cells:
        raw = as_bytes(value)
        for needle in needles:
            assert needle.encode() not in raw, f"{needle!r} stored in clear in {table}.{column}"


def files_to_scan(settings) -> list[Path]:
    files = [p for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    if settings.is_sqlite:
        db = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
        files += [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")) if p.exists()]
    return files


def assert_absent_from_files(settings, needles: list[str]) -> None:
    files = files_to_scan(settings)
    assert files
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, f"{needle!r} stored in clear in {path}"
            assert needle.encode("utf-16-le") not in data, f"{needle!r} (UTF-16) in {path}"


def grant(client, token: str, purpose: str) -> None:
    r = client.put(f"/api/v1/privacy/consents/{purpose}", json={"granted": True}, headers=auth(token))
    assert r.status_code == 200, r.text


@pytest.fixture
def signed_up(client):
    token, user = sign_up(
        client, PHONE, model="Redmi K70", os_version="Android 14", device_id="redmi-1", network_type="wifi"
    )
    h = auth(token)
    assert (
        client.patch("/api/v1/me", json={"nickname": "小马", "region": "福建省厦门市"}, headers=h).status_code
        == 200
    )
    assert (
        client.patch("/api/v1/me/privacy-settings", json={"show_phone": True}, headers=h).status_code == 200
    )
    assert client.put("/api/v1/me/password", json={"password": "secret123"}, headers=h).status_code == 204
    r = client.post("/api/v1/auth/sessions", json={"phone": "+86 138 0013 8000", "password": "secret123"})
    assert r.status_code == 201
    # the number is readable through the API, by its owner and on the opted-in public profile
    assert client.get("/api/v1/me", headers=h).json()["phone"] == "+8613800138000"
    assert client.get(f"/api/v1/users/{user['id']}", headers=h).json()["phone"] == "+8613800138000"
    return token, user


def test_phone_is_never_stored_in_clear(ctx, settings, signed_up):
    assert_absent(ctx, PHONE_FORMS)
    if settings.is_sqlite:
        assert_absent_from_files(settings, PHONE_FORMS)


def test_phone_is_stored_encrypted_and_indexed(ctx, signed_up):
    with ctx.db.engine.connect() as conn:
        row = conn.execute(text("SELECT phone_enc, phone_bidx FROM users")).one()
    assert row.phone_enc and len(bytes(row.phone_enc)) > len(PHONE)
    assert len(row.phone_bidx) == 64


def test_real_name_data_is_never_stored_in_clear(client, ctx, settings, signed_up):
    token, _ = signed_up
    grant(client, token, "real_name")
    r = client.post("/api/v1/me/real-name", json={"name": NAME, "id_number": ID_NUMBER}, headers=auth(token))
    assert r.status_code == 201, r.text
    assert ID_NUMBER not in r.text and NAME not in r.text
    needles = [ID_NUMBER, ID17, ID_NUMBER[6:14] + ID_NUMBER[14:], NAME, *PHONE_FORMS]
    assert_absent(ctx, needles)
    if settings.is_sqlite:
        assert_absent_from_files(settings, needles)


# The profile fields (issue 7 part 5): sealed like the phone, never stored in clear.
PROFILE = {
    "nickname": "霁月清风",
    "gender": "female",
    "birthday": "1987-03-29",
    "tags": ["蓝鳍金枪鱼", "手冲咖啡师"],
    "region": "甘肃省嘉峪关市",
}
PROFILE_NEEDLES = [
    "霁月清风",
    "female",
    "1987-03-29",
    "19870329",
    "蓝鳍金枪鱼",
    "手冲咖啡师",
    "甘肃省嘉峪关市",
    # how a JSON column would have written the tags on SQLite
    "\\u84dd\\u9ccd",
]


def test_profile_fields_are_never_stored_in_clear(client, ctx, settings):
    token, user = sign_up(client, PHONE)
    h = auth(token)
    r = client.patch("/api/v1/me", json=PROFILE, headers=h)
    assert r.status_code == 200, r.text
    r = client.patch("/api/v1/me/privacy-settings", json={"show_region": True}, headers=h)
    assert r.status_code == 200, r.text
    # readable through the API, by the owner and on the public profile
    me = client.get("/api/v1/me", headers=h).json()
    assert {k: me[k] for k in PROFILE} == PROFILE
    public = client.get(f"/api/v1/users/{user['id']}", headers=h).json()
    assert (public["nickname"], public["region"], public["tags"]) == (
        PROFILE["nickname"],
        PROFILE["region"],
        PROFILE["tags"],
    )
    assert_absent(ctx, PROFILE_NEEDLES)
    if settings.is_sqlite:
        assert_absent_from_files(settings, PROFILE_NEEDLES)


def test_profile_fields_are_sealed_under_the_users_key(client, ctx):
    token, user = sign_up(client, PHONE)
    assert client.patch("/api/v1/me", json=PROFILE, headers=auth(token)).status_code == 200
    with ctx.db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT nickname_enc, gender_enc, birthday_enc, tags_enc, region_enc FROM users")
        ).one()
    with ctx.db.session() as s:
        cipher = ctx.keys.cipher(s, user["id"])
    opened = {
        name: cipher.decrypt(f"users.{name}_enc", bytes(getattr(row, f"{name}_enc"))) for name in PROFILE
    }
    assert opened == {**PROFILE, "tags": '["蓝鳍金枪鱼", "手冲咖啡师"]'}
