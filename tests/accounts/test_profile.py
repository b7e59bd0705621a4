"""Profile (P29, P30), the public profile switches (P38, P39) and real-name verification (P32)."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import auth, sign_up
from huirongke.accounts.profile import review_real_name
from huirongke.config import get_settings
from huirongke.kit.clock import clock, utcnow
from huirongke.kit.idcard import checksum_char

OTHER = "13900139000"
ID17 = "11010519491231002"
ID_NUMBER = ID17 + checksum_char(ID17)


def valid_id(first17: str = ID17) -> str:
    return first17 + checksum_char(first17)


def bad_checksum(number: str) -> str:
    return number[:17] + next(c for c in "0123456789X" if c != number[17])


def assert_error(r, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture
def me(client):
    token, user = sign_up(client)
    return auth(token), user


@pytest.fixture
def other(client, me):
    clock.advance(timedelta(seconds=61))
    token, user = sign_up(client, OTHER)
    return auth(token), user


def patch(client, headers, **fields):
    return client.patch("/api/v1/me", json=fields, headers=headers)


def png_bytes(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(out, format="PNG")
    return out.getvalue()


def upload(client, headers) -> dict[str, Any]:
    r = client.post("/api/v1/media", files={"file": ("a.png", png_bytes(), "image/png")}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def grant_real_name(client, headers) -> None:
    r = client.put("/api/v1/privacy/consents/real_name", json={"granted": True}, headers=headers)
    assert r.status_code == 200, r.text


# --- reading and correcting the profile ---------------------------------------------------------


def test_me_shows_the_whole_profile(client, me):
    h, user = me
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == user["id"]
    assert body["phone"] == "+8613800138000"
    for key in ["nickname", "gender", "birthday", "region", "avatar_media_id", "avatar_url", "real_name"]:
        assert body[key] is None
    assert body["tags"] == []
    assert body["has_password"] is False


def test_me_needs_a_token(client):
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(client.patch("/api/v1/me", json={"nickname": "x"}), 401, "unauthorized")


@pytest.mark.parametrize("nickname", ["王", "王小明", "a" * 20, "汇" * 20, "Tom Lee", "销售达人🚀"])
def test_nickname_accepted(client, me, nickname):
    h, _ = me
    r = patch(client, h, nickname=nickname)
    assert r.status_code == 200, r.text
    assert r.json()["nickname"] == nickname
    assert client.get("/api/v1/me", headers=h).json()["nickname"] == nickname


def test_nickname_is_trimmed(client, me):
    h, _ = me
    assert patch(client, h, nickname="  小李  ").json()["nickname"] == "小李"


@pytest.mark.parametrize("nickname", ["", "   ", "a" * 21, "汇" * 21, None])
def test_nickname_length_and_emptiness(client, me, nickname):
    h, _ = me
    assert patch(client, h, nickname="原名").status_code == 200
    assert_error(patch(client, h, nickname=nickname), 422)
    assert client.get("/api/v1/me", headers=h).json()["nickname"] == "原名"


@pytest.mark.parametrize(
    "nickname", ["a\x00b", "小\u200b明", "tab\there", "bell\x07", "新\nline", "rtl\u202e"]
)
def test_nickname_control_characters_are_rejected(client, me, nickname):
    h, _ = me
    assert_error(patch(client, h, nickname=nickname), 422)
    assert client.get("/api/v1/me", headers=h).json()["nickname"] is None


@pytest.mark.parametrize("gender", ["male", "female", "other"])
def test_gender_enum(client, me, gender):
    h, _ = me
    assert patch(client, h, gender=gender).json()["gender"] == gender
    assert patch(client, h, gender=None).json()["gender"] is None


@pytest.mark.parametrize("gender", ["Male", "m", "unknown", "", 1])
def test_gender_outside_the_enum_is_422(client, me, gender):
    h, _ = me
    assert_error(patch(client, h, gender=gender), 422)


def test_birthday(client, me):
    h, _ = me
    assert patch(client, h, birthday="1990-05-17").json()["birthday"] == "1990-05-17"
    assert patch(client, h, birthday="1900-01-01").json()["birthday"] == "1900-01-01"
    assert patch(client, h, birthday=None).json()["birthday"] is None


def test_birthday_today_is_not_in_the_future(client, me):
    # a birthday of today is valid (not "in the future"); it makes the user a minor (P42)
    h, _ = me
    today = utcnow().date().isoformat()
    r = patch(client, h, birthday=today)
    assert r.status_code == 200, r.text
    assert r.json()["birthday"] == today


@pytest.mark.parametrize(
    "birthday",
    [
        (date.today() + timedelta(days=2)).isoformat(),
        "2999-01-01",
        "1800-01-01",
        "1990-02-30",
        "yesterday",
        "1990/05/17",
    ],
)
def test_bad_birthday_is_422(client, me, birthday):
    h, _ = me
    assert_error(patch(client, h, birthday=birthday), 422)
    assert client.get("/api/v1/me", headers=h).json()["birthday"] is None


def test_tags_are_deduplicated_and_trimmed(client, me):
    h, _ = me
    r = patch(client, h, tags=["保险", " 理财 ", "保险", "房产", "理财"])
    assert r.status_code == 200
    assert r.json()["tags"] == ["保险", "理财", "房产"]
    assert patch(client, h, tags=[f"t{i}" for i in range(10)]).status_code == 200
    assert patch(client, h, tags=[]).json()["tags"] == []


@pytest.mark.parametrize(
    "tags",
    [
        [f"t{i}" for i in range(11)],
        ["ok", ""],
        ["ok", "   "],
        ["x" * 13],
        ["a\x00b"],
        "保险",
        [1, 2],
    ],
)
def test_bad_tags_are_422(client, me, tags):
    h, _ = me
    assert patch(client, h, tags=["原来"]).status_code == 200
    assert_error(patch(client, h, tags=tags), 422)
    assert client.get("/api/v1/me", headers=h).json()["tags"] == ["原来"]


def test_region(client, me):
    h, _ = me
    assert patch(client, h, region="福建省厦门市").json()["region"] == "福建省厦门市"
    assert patch(client, h, region=None).json()["region"] is None
    assert_error(patch(client, h, region="省" * 33), 422)
    assert_error(patch(client, h, region="厦门\x00"), 422)


def test_several_fields_at_once_and_partial_updates(client, me):
    h, _ = me
    r = patch(
        client, h, nickname="小张", gender="female", birthday="1988-08-08", tags=["保险"], region="上海市"
    )
    assert r.status_code == 200
    r = patch(client, h, nickname="张经理")
    body = r.json()
    assert body["nickname"] == "张经理"
    assert (body["gender"], body["birthday"], body["tags"], body["region"]) == (
        "female",
        "1988-08-08",
        ["保险"],
        "上海市",
    )


def test_one_bad_field_changes_nothing(client, me):
    h, _ = me
    assert_error(patch(client, h, nickname="新名字", birthday="2999-01-01"), 422)
    assert client.get("/api/v1/me", headers=h).json()["nickname"] is None


@pytest.mark.parametrize(
    "field",
    [{"phone": "13900139000"}, {"id": "x"}, {"has_password": True}, {"show_phone": True}, {"nick_name": "x"}],
)
def test_unknown_or_readonly_fields_are_422(client, me, field):
    h, _ = me
    assert_error(patch(client, h, **field), 422)
    assert client.get("/api/v1/me", headers=h).json()["phone"] == "+8613800138000"


def test_body_must_be_an_object(client, me):
    h, _ = me
    for body in (["nickname"], "nickname", 42):
        assert_error(client.patch("/api/v1/me", json=body, headers=h), 422)


def test_avatar(client, me):
    h, _ = me
    media = upload(client, h)
    r = patch(client, h, avatar_media_id=media["id"])
    assert r.status_code == 200
    assert r.json()["avatar_media_id"] == media["id"]
    assert r.json()["avatar_url"] == media["url"]
    assert client.get(media["url"]).status_code == 200
    assert patch(client, h, avatar_media_id=None).json()["avatar_url"] is None


def test_avatar_of_another_user_is_404_like_a_missing_one(client, me, other):
    h, _ = me
    oh, _ = other
    theirs = upload(client, oh)
    foreign = assert_error(patch(client, h, avatar_media_id=theirs["id"]), 404, "media_not_found")
    missing = assert_error(
        patch(client, h, avatar_media_id="nosuchmedia00000000000000"), 404, "media_not_found"
    )
    assert foreign == missing
    assert client.get("/api/v1/me", headers=h).json()["avatar_media_id"] is None


# --- privacy settings and the public profile -----------------------------------------------------


def test_privacy_settings_defaults_and_switches(client, me):
    h, _ = me
    r = client.get("/api/v1/me/privacy-settings", headers=h)
    assert r.json() == {"show_phone": False, "show_region": False, "personalized_recommendations": False}
    r = client.patch("/api/v1/me/privacy-settings", json={"show_phone": True}, headers=h)
    assert r.json() == {"show_phone": True, "show_region": False, "personalized_recommendations": False}
    r = client.patch(
        "/api/v1/me/privacy-settings", json={"show_region": True, "show_phone": False}, headers=h
    )
    assert r.json() == {"show_phone": False, "show_region": True, "personalized_recommendations": False}
    assert client.get("/api/v1/me/privacy-settings", headers=h).json()["show_region"] is True
    assert_error(client.patch("/api/v1/me/privacy-settings", json={"show_phone": "maybe"}, headers=h), 422)
    assert_error(client.patch("/api/v1/me/privacy-settings", json={"show_email": True}, headers=h), 422)


def test_public_profile_hides_phone_and_region_by_default(client, me, other):
    h, user = me
    oh, _ = other
    assert (
        patch(client, h, nickname="李经理", region="福建省厦门市", tags=["保险"], gender="male").status_code
        == 200
    )
    r = client.get(f"/api/v1/users/{user['id']}", headers=oh)
    assert r.status_code == 200
    body = r.json()
    assert "phone" not in body
    assert "region" not in body
    assert body["id"] == user["id"]
    assert body["nickname"] == "李经理"
    assert body["tags"] == ["保险"]
    assert body["real_name_verified"] is False
    assert "13800138000" not in r.text and "厦门" not in r.text
    # nor does the owner's own public view show more
    own = client.get(f"/api/v1/users/{user['id']}", headers=h).json()
    assert "phone" not in own and "region" not in own


def test_public_profile_shows_phone_and_region_when_switched_on(client, me, other):
    h, user = me
    oh, _ = other
    assert patch(client, h, region="福建省厦门市").status_code == 200
    assert (
        client.patch("/api/v1/me/privacy-settings", json={"show_phone": True}, headers=h).status_code == 200
    )
    body = client.get(f"/api/v1/users/{user['id']}", headers=oh).json()
    assert body["phone"] == "+8613800138000"
    assert "region" not in body
    assert (
        client.patch("/api/v1/me/privacy-settings", json={"show_region": True}, headers=h).status_code == 200
    )
    body = client.get(f"/api/v1/users/{user['id']}", headers=oh).json()
    assert body["phone"] == "+8613800138000"
    assert body["region"] == "福建省厦门市"
    # switching off hides them again at once
    r = client.patch(
        "/api/v1/me/privacy-settings", json={"show_phone": False, "show_region": False}, headers=h
    )
    assert r.status_code == 200
    body = client.get(f"/api/v1/users/{user['id']}", headers=oh).json()
    assert "phone" not in body and "region" not in body


def test_public_profile_default_nickname(client, me, other):
    _, user = me
    oh, _ = other
    body = client.get(f"/api/v1/users/{user['id']}", headers=oh).json()
    assert body["nickname"]
    assert "138" not in body["nickname"]


def test_unknown_user_is_404(client, me):
    h, _ = me
    err = assert_error(client.get("/api/v1/users/nosuchuser000000000000000", headers=h), 404)
    assert err["code"] == "user_not_found"
    assert err["details"] == {}


# --- real-name verification (P32) -----------------------------------------------------------------


def submit(client, headers, name: str = "王小明", id_number: str = ID_NUMBER):
    return client.post("/api/v1/me/real-name", json={"name": name, "id_number": id_number}, headers=headers)


def test_real_name_needs_separate_consent(client, me):
    h, _ = me
    err = assert_error(submit(client, h), 428, "consent_required")
    assert err["details"]["purpose"] == "real_name"


def test_real_name_invalid_checksum_is_422(client, me):
    h, _ = me
    grant_real_name(client, h)
    assert_error(submit(client, h, id_number=bad_checksum(ID_NUMBER)), 422, "invalid_id_number")
    # impossible birth date, even with a right checksum
    assert_error(submit(client, h, id_number=valid_id("11010519491332002")), 422, "invalid_id_number")
    # shape
    assert_error(submit(client, h, id_number="0" + ID_NUMBER[1:17] + "1"), 422)
    assert_error(submit(client, h, id_number=ID_NUMBER[:17]), 422)
    assert_error(submit(client, h, id_number=ID_NUMBER + "1"), 422)
    assert_error(submit(client, h, name="X"), 422)
    assert_error(submit(client, h, name="王小明1"), 422)
    assert client.get("/api/v1/me", headers=h).json()["real_name"] is None


def test_real_name_submission_is_pending_and_masked(client, me):
    h, _ = me
    grant_real_name(client, h)
    r = submit(client, h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending"
    assert body["verified_at"] is None
    assert body["id_number_masked"] == ID_NUMBER[:3] + "*" * 11 + ID_NUMBER[-4:]
    assert body["name_masked"] == "王**"
    assert ID_NUMBER not in r.text and "王小明" not in r.text
    me_body = client.get("/api/v1/me", headers=h).json()
    assert me_body["real_name"]["status"] == "pending"
    assert (
        client.get("/api/v1/me/real-name", headers=h).json()["id_number_masked"] == body["id_number_masked"]
    )


def test_real_name_lowercase_x_is_accepted(client, me):
    h, _ = me
    grant_real_name(client, h)
    first17 = next(
        f"11010519491231{i:03d}" for i in range(1000) if checksum_char(f"11010519491231{i:03d}") == "X"
    )
    r = submit(client, h, id_number=first17 + "x")
    assert r.status_code == 201, r.text
    assert r.json()["id_number_masked"].endswith("X")


def test_pending_submission_can_be_corrected(client, me):
    h, _ = me
    grant_real_name(client, h)
    assert submit(client, h).status_code == 201
    second = valid_id("44030419800101123")
    r = submit(client, h, name="李四", id_number=second)
    assert r.status_code == 201
    assert r.json()["id_number_masked"].endswith(second[-4:])
    assert r.json()["name_masked"] == "李*"


def test_verified_real_name_is_locked(client, ctx, me, other):
    h, user = me
    oh, _ = other
    grant_real_name(client, h)
    assert submit(client, h).status_code == 201
    with ctx.db.session() as s:
        review_real_name(s, user["id"], approve=True)
    body = client.get("/api/v1/me/real-name", headers=h).json()
    assert body["status"] == "verified"
    assert body["verified_at"] is not None
    assert client.get(f"/api/v1/users/{user['id']}", headers=oh).json()["real_name_verified"] is True
    err = assert_error(
        submit(client, h, name="李四", id_number=valid_id("44030419800101123")), 409, "real_name_locked"
    )
    assert err["message"]
    assert_error(submit(client, h), 409, "real_name_locked")
    body = client.get("/api/v1/me/real-name", headers=h).json()
    assert body["status"] == "verified" and body["name_masked"] == "王**"


def test_rejected_submission_can_be_resubmitted(client, ctx, me):
    h, user = me
    grant_real_name(client, h)
    assert submit(client, h).status_code == 201
    with ctx.db.session() as s:
        review_real_name(s, user["id"], approve=False, note="照片不清晰")
    assert client.get("/api/v1/me/real-name", headers=h).json()["status"] == "rejected"
    r = submit(client, h)
    assert r.status_code == 201
    assert r.json()["status"] == "pending"


# --- the staff CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("HRK_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("HRK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HRK_ENV", settings.env)
    if settings.redis_url:
        monkeypatch.setenv("HRK_REDIS_URL", settings.redis_url)
    else:
        monkeypatch.delenv("HRK_REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_verify_then_locked(client, me, cli_env):
    from huirongke.cli import app

    h, user = me
    grant_real_name(client, h)
    assert submit(client, h).status_code == 201
    result = cli_env.invoke(app, ["realname", "verify", user["id"]])
    assert result.exit_code == 0, result.output
    assert "已通过" in result.output
    assert client.get("/api/v1/me/real-name", headers=h).json()["status"] == "verified"
    assert_error(submit(client, h), 409, "real_name_locked")
    # verifying again, or rejecting after verification, is refused
    again = cli_env.invoke(app, ["realname", "reject", user["id"], "--reason", "重新审核"])
    assert again.exit_code == 1
    assert client.get("/api/v1/me/real-name", headers=h).json()["status"] == "verified"


def test_cli_reject_and_unknown_user(client, me, cli_env):
    from huirongke.cli import app

    h, user = me
    grant_real_name(client, h)
    assert submit(client, h).status_code == 201
    result = cli_env.invoke(app, ["realname", "reject", user["id"], "--reason", "证件号与姓名不符"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/me/real-name", headers=h).json()["status"] == "rejected"
    missing = cli_env.invoke(app, ["realname", "verify", "nosuchuser000000000000000"])
    assert missing.exit_code == 1
