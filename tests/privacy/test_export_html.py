"""The export's index.html is a Chinese document a person reads on a phone: data-map labels, Beijing
times, no internal ids or secrets, no horizontal scrolling at 320 px. data.json stays complete."""

from __future__ import annotations

import json
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from privacy_support import export_and_download, rich_user, unzip
from sqlalchemy import select

from huirongke.privacy import registry
from huirongke.privacy.export_html import local_time

CHROMIUM = Path("/usr/bin/chromium")
LONG = "这是一段很长的说明" * 30 + "x" * 120  # no spaces: must wrap, not widen the page


class _Text(HTMLParser):
    """The text a reader sees (no markup, no style sheet)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip = tag in ("style", "script", "code")  # code: the zip's file names
        self.parts += [v for k, v in attrs if k == "alt" and v]

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


@pytest.fixture
def exported(client, ctx) -> tuple[str, dict, str]:
    """(index.html, data.json, token) for a user with data in every category the API offers."""
    token, _ = rich_user(client)
    r = client.post(
        "/api/v1/me/cases",
        json={"kind": "contact", "description": LONG},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 201, r.text
    _, archive = export_and_download(client, token)
    files = unzip(archive)
    return files["index.html"].decode(), json.loads(files["data.json"]), token


def test_fields_carry_chinese_labels_and_values(exported):
    html, _, _ = exported
    text = visible_text(html)
    for heading in ("账号与个人资料", "登录设备", "登录会话", "实名认证", "授权同意记录", "上传的媒体文件"):
        assert f"<h2>{heading}</h2>" in html, heading
    # data-map labels of personal columns, record labels, and coded values in words
    for word in ("昵称", "所在地区", "真实姓名", "身份证号码", "设备型号", "登录方式", "短信验证码", "女"):
        assert word in text, word
    assert "个性化推荐" in text or "个性化" in text  # the consented purpose, by its catalogue name
    assert "敏感" in text  # sensitive fields are marked
    assert '<img src="media/' in html  # the avatar is shown, from the zip's media folder


def test_no_english_column_names_or_codes(exported):
    html, data, _ = exported
    text = visible_text(html)
    names = {name for cat in data["categories"] for row in cat["rows"] for name in row}
    names |= {cat["table"] for cat in data["categories"]}
    assert {"user_id", "created_at", "status", "nickname"} <= names
    for name in names:
        assert not re.search(rf"(?<![A-Za-z_]){re.escape(name)}(?![A-Za-z_])", text), name
    for code in ("female", "sms", "personalization", "awaiting_verification", "active", "denied", "True"):
        assert not re.search(rf"(?<![A-Za-z_]){code}(?![A-Za-z_])", text), code


def test_times_are_beijing_time_never_iso(exported):
    html, data, _ = exported
    text = visible_text(html)
    iso = re.search(r"\d{4}-\d{2}-\d{2}", text)
    assert not iso, text[iso.start() - 200 : iso.end() + 50]
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text)
    assert "+00:00" not in html and "UTC" not in text
    at = datetime.fromisoformat(data["exported_at"])
    beijing = at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert local_time(at) == f"{beijing.year}年{beijing.month}月{beijing.day}日 {beijing:%H:%M}"
    assert f"导出时间：{local_time(at)}" in text
    assert "1949年12月31日" in text  # the birthday the ID number set, as a date


def test_no_internal_ids_or_secrets(exported, ctx):
    html, data, _ = exported
    users = registry.by_name("users").table
    ids = {data["user_id"]}
    for cat in data["categories"]:
        t = registry.by_name(cat["table"])
        hidden = {c.name for c in t.columns if c.column.primary_key or c.column.foreign_keys}
        hidden |= {s.link_column for s in t.subjects}
        for row in cat["rows"]:
            ids |= {str(v) for k, v in row.items() if k in hidden and len(str(v or "")) >= 8}
    assert len(ids) > 10
    for value in ids:
        assert value not in html, value
    with ctx.db.session() as s:
        user = s.execute(select(users).where(users.c.id == data["user_id"])).mappings().one()
        secrets = {user["phone_bidx"]}
        for t in registry.tables():
            secret_cols = [c.name for c in t.columns if not c.cls.exported or "bidx" in c.name]
            for sub in t.subjects:
                if sub.via or sub.kind == "third_party" or not secret_cols:
                    continue
                col = t.table.c[sub.link_column]
                value = data["user_id"] if sub.kind == "user" else user["phone_bidx"]
                for row in s.execute(select(t.table).where(col == value)).mappings():
                    secrets |= {row[n] for n in secret_cols if isinstance(row[n], str) and row[n]}
    assert len(secrets) >= 2  # the blind index and at least the session's token hash
    for value in secrets:
        assert value not in html


def test_data_json_stays_machine_readable_and_complete(exported):
    _, data, _ = exported
    users = next(c for c in data["categories"] if c["table"] == "users")
    row = users["rows"][0]
    assert row["id"] == data["user_id"]
    assert re.match(r"\d{4}-\d{2}-\d{2}T", row["created_at"])
    assert row["gender"] == "female"


@pytest.mark.browser
def test_readable_on_a_320_px_phone(exported, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    html, _, _ = exported
    page_file = tmp_path / "index.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(
                viewport={"width": 320, "height": 640}, device_scale_factor=2, is_mobile=True
            )
            page.goto(page_file.as_uri())
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            assert widths[0] <= widths[1], widths
            assert page.locator("text=我的个人信息副本").is_visible()
            font = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('dd')).fontSize)")
            assert font >= 15
            page.screenshot(path=str(tmp_path / "export-320.png"), full_page=True)
        finally:
            browser.close()


def test_record_labels_name_real_columns():
    """A typo in the data map's record labels would silently drop a field from the document."""
    from huirongke.privacy.datamap import RECORD_LABELS

    columns = {(t.name, c.name) for t in registry.tables() for c in t.columns}
    names = {c for _, c in columns}
    for key in RECORD_LABELS:
        table, _, column = key.rpartition(".")
        assert ((table, column) in columns) if table else (column in names), key
