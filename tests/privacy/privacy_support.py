"""Shared actions for the privacy-engine tests: real API calls and real service calls, no mocks.

Not a conftest (a second `conftest` module would shadow tests/conftest.py for `from conftest import`).
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, timedelta
from typing import Any

from PIL import Image
from sqlalchemy import text
from typer.testing import CliRunner

from conftest import auth, latest_code, request_code_solving, sign_up
from huirongke.config import get_settings
from huirongke.kit.clock import china_today, clock

PHONE = "13800138000"
OTHER_PHONE = "13900139000"
GUARDIAN_PHONE = "13700137000"
#: The well-known sample resident ID number (valid checksum), never a real person's.
ID_NUMBER = "11010519491231002X"
REAL_NAME = "张三丰"
DEVICE = {"model": "Xiaomi 14", "os_version": "HyperOS 1.0", "device_id": "mi-device-7", "network_type": "5g"}
_CODE = re.compile(r"(\d{6})")


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The API.md error shape, with the expected status and code."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def count(ctx: Any, table: str, where: str = "", **params: Any) -> int:
    with ctx.db.session() as s:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(s.scalar(text(sql), params))


def rows(ctx: Any, sql: str, **params: Any) -> list[Any]:
    with ctx.db.session() as s:
        return list(s.execute(text(sql), params).all())


def publish(
    ctx: Any, text_: str = "# 汇容客隐私政策（新版）\n\n新增了说明。", changes: str = "新增说明"
) -> int:
    with ctx.db.session() as s:
        return ctx.policy.publish(s, text_, changes).version


def image_bytes(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="PNG")
    return out.getvalue()


def upload_avatar(client: Any, token: str) -> dict[str, Any]:
    r = client.post(
        "/api/v1/media", files={"file": ("a.png", image_bytes(), "image/png")}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    media = r.json()
    r = client.patch("/api/v1/me", json={"avatar_media_id": media["id"]}, headers=auth(token))
    assert r.status_code == 200, r.text
    return media


def media_key(media: dict[str, Any]) -> str:
    return str(media["url"]).removeprefix("/media/")


def grant(client: Any, token: str, purpose: str, granted: bool = True) -> Any:
    r = client.put(f"/api/v1/privacy/consents/{purpose}", json={"granted": granted}, headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def submit_real_name(client: Any, token: str) -> dict[str, Any]:
    grant(client, token, "real_name")
    r = client.post(
        "/api/v1/me/real-name", json={"name": REAL_NAME, "id_number": ID_NUMBER}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    return r.json()


def newest_code(client: Any, phone: str) -> str:
    """The code in the newest message to a phone (a login code may have gone out just before)."""
    return latest_code(client, phone)


def outbox(client: Any, phone: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/dev/sms-outbox", params={"phone": phone})
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


def code_in(message: dict[str, Any]) -> str:
    m = _CODE.search(message["text"])
    assert m, message
    return m.group(1)


def export_and_download(client: Any, token: str) -> tuple[dict[str, Any], bytes]:
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 202, r.text
    export_id = r.json()["id"]
    r = client.get(f"/api/v1/me/data-exports/{export_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["status"] == "ready", status
    r = client.get(status["download_url"], headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return status, r.content


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rich_user(
    client: Any,
    phone: str = PHONE,
    *,
    nickname: str = "林小满",
    region: str = "思明区莲前东路",
    tag: str = "金牌经纪X9",
) -> tuple[str, dict[str, Any]]:
    """A user with data in as many categories as the API offers: device, profile, avatar, real name,
    consents, permissions, a case. Returns (token, me)."""
    token, _ = sign_up(client, phone, **DEVICE)
    r = client.patch(
        "/api/v1/me",
        json={
            "nickname": nickname,
            "region": region,
            "tags": [tag],
            "gender": "female",
            "birthday": "1990-05-06",
        },
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    upload_avatar(client, token)
    submit_real_name(client, token)
    grant(client, token, "personalization")
    r = client.post(
        "/api/v1/privacy/permissions/location/events", json={"event": "denied"}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/api/v1/me/cases",
        json={"kind": "contact", "description": "请问我的资料如何被使用？"},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    me = client.get("/api/v1/me", headers=auth(token))
    assert me.status_code == 200, me.text
    return token, me.json()


def run_cli(monkeypatch: Any, settings: Any, *args: str) -> Any:
    """Run the `huirongke` CLI against the test's own database and data folder."""
    from huirongke.cli import app

    monkeypatch.setenv("HRK_ENV", "dev")
    monkeypatch.setenv("HRK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HRK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HRK_LOG_LEVEL", "WARNING")
    if settings.redis_url:
        monkeypatch.setenv("HRK_REDIS_URL", settings.redis_url)
    else:
        monkeypatch.delenv("HRK_REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def set_china_date(day: date, hour: int = 10) -> None:
    """Move the clock so that it is `hour`:00 on `day` in Beijing."""
    from datetime import UTC, datetime

    from huirongke.kit.clock import utcnow

    target = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour - 8)
    clock.advance(target - utcnow())
    assert china_today() == day


def years_ago(n: int, today: date | None = None) -> date:
    today = today or china_today()
    try:
        return today.replace(year=today.year - n)
    except ValueError:  # 29 February
        return today.replace(year=today.year - n, day=28)


def sign_in_again(client: Any, phone: str, **extra: Any) -> Any:
    clock.advance(timedelta(seconds=61))
    assert request_code_solving(client, phone).status_code == 202  # a challenge after a few codes
    return client.post(
        "/api/v1/auth/sessions", json={"phone": phone, "code": latest_code(client, phone), **extra}
    )


def step_up(client: Any, token: str, phone: str = PHONE) -> dict[str, Any]:
    """Prove the phone again (API.md "Step-up verification"), as a client does on 403 step_up_required."""
    r = client.post("/api/v1/me/step-up/sms-codes", headers=auth(token))
    assert r.status_code == 202, r.text
    r = client.post("/api/v1/me/step-up", json={"code": latest_code(client, phone)}, headers=auth(token))
    assert r.status_code == 200, r.text
    return dict(r.json())
