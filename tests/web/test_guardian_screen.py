"""The 监护人 screen (issue 8), in a real browser against a real server: a minor links a guardian,
sees the guardian (masked number, since when, until the 18th birthday) from 账号安全和隐私设置,
and unlinks only with the code texted to the guardian; an adult is not offered linking.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from browser_support import (
    Server,
    Tab,
    agree_on_first_visit,
    auth,
    launched_browser,
    opened_tab,
    outbox_code,
    shared_server,
    shot,
    sign_up_over_http,
    signed_in,
)
from playwright.sync_api import Browser, expect

from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit.clock import utcnow
from huirongke.privacy.models import GuardianConsent

pytestmark = pytest.mark.browser

GUARDIAN_PHONE = "13700137000"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser() as chromium:
        yield chromium


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    with opened_tab(browser) as t:
        yield t


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from shared_server(
        request,
        backend,
        tmp_path_factory.mktemp("guardian-server"),
        HRK_SMS_RESEND_SECONDS="1",
        HRK_SMS_IP_HOURLY_LIMIT="500",
    )


def years_ago(years: int) -> date:
    today = date.today()
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def test_minor_links_sees_and_unlinks_the_guardian_with_their_code(
    server: Server, tab: Tab, tmp_path: Path
) -> None:
    page, phone = tab.page, "13800138301"
    born = years_ago(16)
    token = sign_up_over_http(server, phone, age={"birth_month": born.strftime("%Y-%m")})
    with server.api() as c:
        r = c.patch("/api/v1/me", json={"birthday": born.isoformat()}, headers=auth(token))
        assert r.status_code == 200, r.text
    agree_on_first_visit(tab, server)
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)

    # Restricted: the screen asks for the guardian's consent, and the guardian confirms by SMS.
    page.goto(server.base_url + "/#/me/guardian")
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    page.locator("#guardian-phone").fill(GUARDIAN_PHONE)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#guardian-send")).to_have_text(re.compile(r"\d+ 秒后重发"))
    page.get_by_role("button", name="从开发发件箱填入").click()
    expect(page.locator("#guardian-code")).to_have_value(re.compile(r"^\d{6}$"))
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/guardian/consent")) as linked:
        page.get_by_role("button", name="确认监护人同意").click()
    assert linked.value.status == 201
    expect(page).to_have_url(re.compile(r"#/me$"))

    # 设置 → 账号安全和隐私设置 → 监护人: the masked number, the local link time, the 18th birthday.
    page.get_by_role("link", name="设置", exact=True).click()
    page.get_by_role("link", name="账号安全和隐私设置").click()
    entry = page.locator("#entry-guardian")
    expect(entry).to_contain_text("已关联")
    entry.click()
    expect(page).to_have_url(re.compile(r"#/me/guardian$"))
    card = page.locator("#guardian-linked")
    expect(card.get_by_role("heading", name="我的监护人")).to_be_visible()
    expect(page.locator("#guardian-linked-phone")).to_have_text("137****7000")
    expect(page.locator("#guardian-linked-phone")).not_to_contain_text(GUARDIAN_PHONE)
    linked_at = page.evaluate(
        """async (iso) => (await import('/static/js/format.js')).formatDateTime(iso)""",
        linked.value.json()["guardian_linked_at"],
    )
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", linked_at)
    expect(page.locator("#guardian-linked-at")).to_have_text(linked_at)
    eighteen = linked.value.json()["guardian_until"]
    assert eighteen == born.replace(year=born.year + 18).isoformat()
    expect(page.locator("#guardian-linked-until")).to_have_text(eighteen)
    expect(page.locator("#guardian-linked-note")).to_contain_text(f"您年满 18 周岁（{eighteen}）时")

    # 解除监护关联: the step explains that the guardian must agree and tell the code.
    page.get_by_role("button", name="解除监护关联").click()
    step = page.locator("#guardian-unlink")
    expect(step).to_be_visible()
    expect(page.locator("#guardian-unlink-explain")).to_contain_text("需要监护人同意")
    expect(page.locator("#guardian-unlink-explain")).to_contain_text("137****7000")
    shot(page, tmp_path, "guardian-unlink.png")

    # Asking for the code texts the guardian, not the user.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/guardian/revocation/sms-codes")) as sent:
        page.get_by_role("button", name="发送验证码").click()
    assert sent.value.status == 202
    expect(page.locator("#guardian-unlink-send")).to_have_text(re.compile(r"\d+ 秒后重发"))
    code = outbox_code(server, GUARDIAN_PHONE, "解除")

    # A wrong code: 400 invalid_code, said at the field; still linked.
    wrong = "000000" if code != "000000" else "111111"
    page.locator("#guardian-unlink-code").fill(wrong)
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/guardian") and r.request.method == "DELETE"
    ) as refused:
        page.get_by_role("button", name="确认解除").click()
    assert refused.value.status == 400
    assert refused.value.json()["error"]["code"] == "invalid_code"
    expect(page.locator("#guardian-unlink-code-error")).to_contain_text("请向监护人核对")
    with server.api() as c:
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["guardian_active"] is True

    # The code the guardian passed on: unlinked, and restricted again until a guardian consents.
    page.locator("#guardian-unlink-code").fill(code)
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/guardian") and r.request.method == "DELETE"
    ) as unlinked:
        page.get_by_role("button", name="确认解除").click()
    assert unlinked.value.status == 204
    assert unlinked.value.request.post_data_json == {"code": code}
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    expect(page.locator("#guardian-linked")).to_have_count(0)
    with server.api() as c:
        status = c.get("/api/v1/me/guardian", headers=auth(token)).json()
    assert status["restricted"] is True
    assert status["guardian_phone"] is None and status["guardian_active"] is False


def link_stale_guardian(server: Server, user_id: str) -> None:
    """A guardian linked before the user turned 18, as `minors.confirm_guardian` writes it (a running
    server's clock cannot be moved forward, so the link is written for an adult directly)."""
    env = server.env
    settings = Settings(
        env="dev",
        data_dir=Path(env["HRK_DATA_DIR"]),
        database_url=env.get("HRK_DATABASE_URL"),
        redis_url=env.get("HRK_REDIS_URL"),
        log_level="WARNING",
    )
    ctx = build_context(settings)
    try:
        with ctx.db.session() as s:
            phone = "+86" + GUARDIAN_PHONE
            row = GuardianConsent(
                user_id=user_id, guardian_phone_bidx=ctx.phone_bidx(phone), consented_at=utcnow()
            )
            row.guardian_phone_enc = ctx.keys.cipher(s, user_id).encrypt(
                "guardian_consents.guardian_phone_enc", phone
            )
            s.add(row)
            s.commit()
    finally:
        ctx.db.dispose()


def test_adult_removes_a_stale_guardian_link_after_confirming(server: Server, tab: Tab) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138303", "/me")
    expect(page.locator("#me-phone")).to_be_visible()
    with server.api() as c:
        user_id = c.get("/api/v1/me", headers=auth(token)).json()["id"]
    link_stale_guardian(server, user_id)

    page.goto(server.base_url + "/#/settings/security")
    entry = page.locator("#entry-guardian")
    expect(entry).to_contain_text("已关联")
    entry.click()
    expect(page.locator("#guardian-linked-phone")).to_have_text("137****7000")
    expect(page.locator("#guardian-linked-until")).to_have_text("已结束")
    expect(page.locator("#guardian-linked-note")).to_contain_text("您已年满 18 周岁")
    expect(page.locator("#guardian-unlink")).to_have_count(0)  # no code to ask the guardian for

    # 取消 in the dialog changes nothing.
    unlink = page.get_by_role("button", name="解除监护关联")
    unlink.click()
    dialog = page.get_by_role("alertdialog", name="解除监护关联？")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="取消").click()
    expect(dialog).to_have_count(0)
    with server.api() as c:
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["guardian_phone"] == "137****7000"

    unlink.click()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/guardian") and r.request.method == "DELETE"
    ) as removed:
        dialog.get_by_role("button", name="解除关联").click()
    assert removed.value.status == 204
    assert removed.value.request.post_data_json == {}
    expect(page.locator("#guardian-done")).to_contain_text("仅适用于未满 18 周岁的用户")
    expect(page.locator("#guardian-phone")).to_have_count(0)  # and no linking offered
    with server.api() as c:
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["guardian_phone"] is None


def test_adult_is_not_offered_a_guardian(server: Server, tab: Tab) -> None:
    page = tab.page
    signed_in(tab, server, "13800138302", "/settings/security")
    expect(page.get_by_role("switch", name="个性化推荐")).to_be_visible()
    expect(page.locator("#entry-guardian")).to_have_count(0)  # nothing to link or unlink
    page.goto(server.base_url + "/#/me/guardian")
    expect(page.locator("#guardian-done")).to_contain_text("仅适用于未满 18 周岁的用户")
    expect(page.locator("#guardian-phone")).to_have_count(0)
    expect(page.get_by_role("button", name="解除监护关联")).to_have_count(0)
