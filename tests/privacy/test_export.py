"""Data export (R06, P29): a zip of data.json (every category, machine readable), index.html (readable,
in Chinese) and the user's media files; only the owner downloads it, for 24 hours; one per 24 hours."""

from __future__ import annotations

import json
from datetime import timedelta

from privacy_support import (
    DEVICE,
    ID_NUMBER,
    OTHER_PHONE,
    REAL_NAME,
    assert_error,
    export_and_download,
    media_key,
    rich_user,
    step_up,
    unzip,
    upload_avatar,
)
from sqlalchemy import select

from conftest import auth, sign_up
from huirongke.kit.clock import clock
from huirongke.privacy import registry
from huirongke.privacy.models import AuditEvent

NICK, REGION, TAG = "林小满", "思明区莲前东路", "金牌经纪X9"


def tables_with_rows(ctx, user_id: str, phone_bidx: str) -> set[str]:
    """Independently of the exporter: the personal tables holding at least one row of this subject."""
    found = set()
    with ctx.db.session() as s:
        for t in registry.personal_tables():
            for sub in t.subjects:
                if sub.via or sub.kind == "third_party":
                    continue
                value = user_id if sub.kind == "user" else phone_bidx
                col = t.table.c[sub.link_column]
                if s.execute(select(col).where(col == value).limit(1)).first() is not None:
                    found.add(t.name)
    return found


def test_export_holds_every_category_decrypted_with_media(client, ctx):
    token, me = rich_user(client, nickname=NICK, region=REGION, tag=TAG)
    avatar = client.get("/api/v1/me", headers=auth(token)).json()["avatar_url"].removeprefix("/media/")
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 202, r.text
    assert set(r.json()) >= {"id", "status"}
    assert r.json()["status"] == "pending"  # the job starts after the request's commit
    export_id = r.json()["id"]

    status = client.get(f"/api/v1/me/data-exports/{export_id}", headers=auth(token)).json()
    assert status["status"] == "ready"
    assert status["download_url"] == f"/api/v1/me/data-exports/{export_id}/download"
    r = client.get(status["download_url"], headers=auth(token))
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"
    files = unzip(r.content)
    assert {"data.json", "index.html"} <= set(files)

    data = json.loads(files["data.json"])
    assert data["user_id"] == me["id"]
    by_table = {c["table"]: c for c in data["categories"]}
    with ctx.db.session() as s:
        bidx = s.scalar(
            select(registry.by_name("users").table.c.phone_bidx).where(
                registry.by_name("users").table.c.id == me["id"]
            )
        )
    expected = tables_with_rows(ctx, me["id"], bidx)
    for name in (
        "users",
        "auth_sessions",
        "devices",
        "real_name_verifications",
        "consent_events",
        "media",
        "policy_agreements",
        "permission_events",
        "privacy_cases",
        "sms_codes",
    ):
        assert name in expected, name
    missing = expected - set(by_table) - {"data_keys"}
    assert missing == set(), f"categories with data but not exported: {missing}"

    user_row = by_table["users"]["rows"][0]
    assert user_row["nickname"] == NICK
    assert user_row["region"] == REGION
    assert user_row["tags"] == [TAG]
    assert user_row["phone"] == "+8613800138000"  # decrypted, under its plain name
    assert user_row["birthday"] == "1949-12-31"  # the ID number's birth date overrides the typed one
    real = by_table["real_name_verifications"]["rows"][0]
    assert real["name"] == REAL_NAME and real["id_number"] == ID_NUMBER
    assert by_table["devices"]["rows"][0]["model"] == DEVICE["model"]
    assert {e["purpose"] for e in by_table["consent_events"]["rows"]} >= {"real_name", "personalization"}
    assert by_table["privacy_cases"]["rows"][0]["description"] == "请问我的资料如何被使用？"
    assert by_table["media"]["rows"][0]["storage_key"] == avatar
    # sensitive fields are marked as such for the reader
    fields = by_table["real_name_verifications"]["fields"]
    assert any(f["sensitive"] for f in fields.values())

    # secrets never leave: token and code hashes, wrapped keys, password hashes, blind indexes
    # (the dev SMS outbox's phone index is a data-map slip reported by test_datamap.py)
    blob = files["data.json"].decode()
    for secret_field in (
        "token_hash",
        "code_hash",
        "wrapped_key",
        "password_hash",
        "id_number_bidx",
        "device_hash",
        "guardian_token_hash",
    ):
        assert secret_field not in blob, secret_field
    for name in ("users", "sms_codes", "real_name_verifications"):
        for row in by_table[name]["rows"]:
            assert not any(k.endswith(("_bidx", "_enc")) for k in row), (name, row)

    # the media file itself
    assert files[f"media/{avatar}"] == ctx.storage.get(avatar)


def test_index_html_is_readable_chinese(client, ctx):
    token, _ = rich_user(client, nickname=NICK, region=REGION, tag=TAG)
    _, archive = export_and_download(client, token)
    html = unzip(archive)["index.html"].decode()
    assert '<html lang="zh-CN">' in html
    assert "我的个人信息副本" in html
    assert NICK in html and REGION in html
    # each category has its Chinese heading (the table label of the data map), and decrypted fields
    # keep their Chinese labels and the 敏感 mark
    for heading in ("账号与个人资料", "登录设备", "实名认证", "授权同意记录", "上传的媒体文件"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert "<h2></h2>" not in html
    assert "真实姓名" in html and "身份证号码" in html
    assert "<th>name</th>" not in html and "<th>id_number</th>" not in html


def test_data_json_field_descriptions_match_the_row_keys(client):
    """Machine readable means a program can look up each value's label: the `fields` map and the row
    keys must agree (decrypted columns are exported as `name`, not `name_enc`)."""
    token, _ = rich_user(client)
    _, archive = export_and_download(client, token)
    data = json.loads(unzip(archive)["data.json"])
    for cat in data["categories"]:
        for row in cat["rows"]:
            personal_keys = [k for k in row if k in cat["fields"] or k + "_enc" in cat["fields"]]
            for k in personal_keys:
                assert k in cat["fields"], f"{cat['table']}.{k} has no description under its own name"


def test_download_needs_the_owner(client):
    token, _ = sign_up(client)
    other, _ = sign_up(client, OTHER_PHONE)
    upload_avatar(client, token)
    status, _ = export_and_download(client, token)
    url = status["download_url"]
    assert_error(client.get(url), 401, "unauthorized")
    assert_error(client.get(url, headers={"Authorization": "Bearer nonsense"}), 401)
    assert_error(client.get(url, headers=auth(other)), 404, "export_not_found")
    assert_error(client.get(f"/api/v1/me/data-exports/{status['id']}", headers=auth(other)), 404)
    assert status["id"] not in client.get("/api/v1/me/data-exports", headers=auth(other)).text


def test_export_expires_after_24_hours(client, ctx):
    token, _ = sign_up(client)
    status, _ = export_and_download(client, token)
    clock.advance(timedelta(hours=23, minutes=59))
    assert client.get(status["download_url"], headers=auth(token)).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert_error(client.get(status["download_url"], headers=auth(token)), 404, "export_expired")


def test_one_export_per_24_hours(client):
    token, _ = sign_up(client)
    export_and_download(client, token)
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert_error(r, 429, "rate_limited")
    retry = int(r.headers["Retry-After"])
    assert 24 * 3600 - 120 < retry <= 24 * 3600 + 1
    clock.advance(timedelta(hours=23))
    step_up(client, token)  # hours later, the session proves the phone again (API.md "Step-up")
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 3601
    clock.advance(timedelta(hours=1, seconds=1))
    step_up(client, token)
    assert client.post("/api/v1/me/data-exports", headers=auth(token)).status_code == 202


def test_export_is_audited(client, ctx):
    token, user = sign_up(client)
    export_and_download(client, token)
    with ctx.db.session() as s:
        got = [
            (e.action, e.actor_type, e.subject_id)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action.like("export.%")).order_by(AuditEvent.seq)
            )
        ]
    assert got == [
        ("export.requested", "user", user["id"]),
        ("export.ready", "system", user["id"]),
        ("export.downloaded", "user", user["id"]),
    ]


def test_archive_is_sealed_at_rest(client, ctx):
    """The stored archive is encrypted under the user's key: no plaintext profile in the media store."""
    token, _ = rich_user(client, nickname=NICK)
    status, _ = export_and_download(client, token)
    with ctx.db.session() as s:
        from huirongke.privacy.models import DataExport

        row = s.get(DataExport, status["id"])
        assert row is not None and row.storage_key
        stored = ctx.storage.get(row.storage_key)
    assert NICK.encode() not in stored and b"data.json" not in stored


def test_unknown_export_ids_are_404(client):
    token, _ = sign_up(client)
    for bad in ("nope", "0" * 32, "x" * 500, "%2e%2e"):
        assert_error(client.get(f"/api/v1/me/data-exports/{bad}", headers=auth(token)), 404)
        assert_error(client.get(f"/api/v1/me/data-exports/{bad}/download", headers=auth(token)), 404)


def test_media_key_helper_matches_the_url(client):
    token, _ = sign_up(client)
    m = upload_avatar(client, token)
    assert m["url"].endswith(media_key(m))


def test_index_html_escapes_what_users_typed(client):
    token, _ = sign_up(client)
    r = client.patch("/api/v1/me", json={"nickname": "<script>x</script>"}, headers=auth(token))
    assert r.status_code == 200, r.text
    _, archive = export_and_download(client, token)
    html = unzip(archive)["index.html"].decode()
    assert "<script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
