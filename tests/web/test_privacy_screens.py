"""The privacy-engine screens in a real browser: 授权管理, 下载我的数据, 注销账号, 联系我们 (cases),
the guardian flows and the two lists.

One server with its job consumer (exports, erasure) is shared by the module's tests, each with its
own phone numbers; the instant-erasure test needs HRK_CANCELLATION_COOLING_OFF_DAYS=0 and starts
its own server first. Set HRK_WEB_SCREENSHOTS=docs/img to refresh consents.png, export.png,
cancel.png and contact.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from browser_support import (
    Server,
    Tab,
    agree_on_first_visit,
    api_paths,
    auth,
    export_over_http,
    launched_browser,
    opened_tab,
    publish_policy,
    request_and_fill_code,
    server_for_test,
    shared_server,
    shot,
    sign_up_over_http,
    signed_in,
    zip_names,
)
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

GUARDIAN_PHONE = "13900139106"


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
        tmp_path_factory.mktemp("rights-server"),
        jobs=True,
        HRK_CANCELLATION_COOLING_OFF_DAYS="7",
        # Several users and a guardian text from 127.0.0.1 within a minute or two.
        HRK_SMS_RESEND_SECONDS="1",
        HRK_SMS_IP_HOURLY_LIMIT="500",
    )


@pytest.fixture
def instant_server(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Server]:
    yield from server_for_test(request, backend, tmp_path, jobs=True, HRK_CANCELLATION_COOLING_OFF_DAYS="0")


# ---------------------------------------------------------------------------------------------
# Runs first, before the shared server starts (on PostgreSQL both would use the same database).


def test_instant_cancellation_before_agreeing_erases_and_leaves_no_residue(
    instant_server: Server, tab: Tab, tmp_path: Path
) -> None:
    server, page = instant_server, tab.page
    phone, nickname = "13800138104", "注销测试员"
    agree_on_first_visit(tab, server)
    token = sign_up_over_http(server, phone)
    with server.api() as c:
        assert c.patch("/api/v1/me", json={"nickname": nickname}, headers=auth(token)).status_code == 200
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)

    # A new policy version: everywhere but on the rights screens, agreeing can't wait.
    publish_policy(server, tmp_path, "调整了注销说明")
    page.goto(server.base_url + "/#/settings/security")
    page.reload()
    expect(page.locator("#policy-dialog")).to_be_visible()
    expect(page.locator("#policy-later")).to_have_count(0)

    # On 注销账号 it can (稍后再说), and the screen works without agreeing.
    page.goto(server.base_url + "/#/settings/cancel")
    page.reload()
    expect(page.locator("#policy-dialog")).to_be_visible()
    page.get_by_role("button", name="稍后再说").click()
    expect(page.locator("#policy-dialog")).to_have_count(0)
    expect(page.locator("#cancel-cooling-off")).to_contain_text("立即开始删除")
    page.get_by_role("button", name="申请注销账号").click()
    modal = page.get_by_role("alertdialog", name="确认注销账号？")
    expect(modal).to_contain_text("立即删除")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/account-cancellation")) as resp:
        modal.get_by_role("button", name="确认注销").click()
    assert resp.value.status == 202
    assert resp.value.json()["cooling_off_days"] == 0

    # Erasure starts at once: the next call answers 401 and the app is back at the login screen.
    expect(page.locator("#login-phone")).to_be_visible(timeout=30_000)
    expect(page.locator("#toast")).to_have_text("账号已注销")
    assert page.evaluate("localStorage.getItem('hrk.token')") is None
    with server.api() as c:
        assert c.get("/api/v1/me", headers=auth(token)).status_code == 401

    # Nothing of the subject is left anywhere the residue scan looks (it runs when erasure ends).
    deadline = time.monotonic() + 30
    while True:
        result = server.cli_result("privacy", "residue", "--phone", phone, "--text", nickname)
        if result.returncode == 0:
            break
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(1)
    assert "未发现残留" in result.stdout


# ---------------------------------------------------------------------------------------------
# On the shared server


def test_consents_grant_and_withdraw_in_one_tap_each(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138101", "/settings/security")
    page.get_by_role("link", name="授权管理").click()
    real_name = page.get_by_role("switch", name="实名认证")
    expect(real_name).not_to_be_checked()
    row = page.locator(".switch-row[data-purpose='real_name']")
    expect(row).to_contain_text("核验姓名与身份证号")
    expect(row).to_contain_text("从未授权")
    expect(page.locator("#permission-list .perm")).to_have_count(9)
    expect(page.locator("#main")).to_contain_text("48 小时内不会再次询问")

    # Granting: one tap, one request, no dialog.
    tab.requests.clear()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/consents/real_name")) as resp:
        real_name.click()
    assert resp.value.status == 200 and resp.value.request.post_data_json == {"granted": True}
    expect(real_name).to_be_checked()
    expect(page.locator("#toast")).to_have_text("已授权“实名认证”")
    expect(row).to_contain_text("授权于")

    # Withdrawing: exactly as easy (R04), and the toast says what happens.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/consents/real_name")) as resp:
        real_name.click()
    assert resp.value.status == 200 and resp.value.request.post_data_json == {"granted": False}
    expect(real_name).not_to_be_checked()
    expect(page.locator("#toast")).to_contain_text("相关处理已停止，仅为此用途保存的信息已删除")
    expect(row).to_contain_text("撤回于")
    assert api_paths(tab.requests).count("PUT /api/v1/privacy/consents/real_name") == 2
    expect(page.get_by_role("alertdialog")).to_have_count(0)

    with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/consents/personalization")):
        page.get_by_role("switch", name="个性化推荐").click()
    expect(page.get_by_role("switch", name="个性化推荐")).to_be_checked()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, tmp_path, "consents.png")

    # The ledger keeps both events (seen through the user's own data export).
    data = export_over_http(server, token)
    ledger = next(c for c in data["categories"] if c["table"] == "consent_events")["rows"]
    events = sorted((r["at"], r["granted"]) for r in ledger if r["purpose"] == "real_name")
    assert [granted for _, granted in events] == [True, False]
    with server.api() as c:
        now = {
            x["purpose"]: x["granted"] for x in c.get("/api/v1/privacy/consents", headers=auth(token)).json()
        }
    assert now == {"real_name": False, "personalization": True, "location": False}


def test_export_progress_download_and_rate_limit(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138102", "/settings/security")
    page.get_by_role("link", name="下载我的数据").click()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/data-exports") and r.request.method == "POST"
    ) as r:
        page.get_by_role("button", name="申请导出").click()
    assert r.value.status == 202

    # Polled every second until ready: a full bar, 已完成, the 24-hour expiry and a 下载 button.
    expect(page.locator("#export-status")).to_have_text("已完成", timeout=30_000)
    expect(page.locator("#export-progress")).to_have_js_property("value", 100)
    expect(page.locator("#export-detail")).to_contain_text("有效期 24 小时")
    shot(page, tmp_path, "export.png")
    with (
        page.expect_download() as download,
        page.expect_request(lambda r: r.url.endswith("/download")) as fetched,
    ):
        page.get_by_role("button", name="下载", exact=True).click()
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    assert re.fullmatch(r"huirongke-export-\d{8}\.zip", download.value.suggested_filename)
    names = zip_names(saved)
    assert "data.json" in names and "index.html" in names
    # The archive is fetched with the bearer token (a plain link could not send it).
    assert fetched.value.headers.get("authorization") == f"Bearer {token}"

    # A second request within 24 hours: the server's message with the wait.
    page.get_by_role("button", name="申请导出").click()
    alert = page.locator("#main .form-alert")
    expect(alert).to_contain_text("每 24 小时只能导出一次")
    expect(alert).to_contain_text("后再试")

    # Coming back shows the ready export again.
    page.reload()
    expect(page.locator("#export-status")).to_have_text("已完成")
    expect(page.get_by_role("button", name="下载", exact=True)).to_be_visible()


def test_cancellation_countdown_and_withdrawal(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138103", "/settings/security")
    page.get_by_role("link", name="注销账号").click()
    expect(page.locator("#cancel-cooling-off")).to_contain_text("7 天冷静期")
    expect(page.locator("#main")).to_contain_text("依法保留的记录")
    expect(page.locator("#main")).to_contain_text("原手机号码可以重新注册")

    # 取消 in the confirm dialog sends nothing.
    tab.requests.clear()
    page.get_by_role("button", name="申请注销账号").click()
    page.get_by_role("alertdialog", name="确认注销账号？").get_by_role("button", name="取消").click()
    assert "POST /api/v1/me/account-cancellation" not in api_paths(tab.requests)

    page.get_by_role("button", name="申请注销账号").click()
    modal = page.get_by_role("alertdialog", name="确认注销账号？")
    expect(modal).to_contain_text("7 天")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/account-cancellation")) as resp:
        modal.get_by_role("button", name="确认注销").click()
    assert resp.value.status == 202

    # A live countdown to erase_after, and 撤回注销.
    countdown = page.locator("#cancel-countdown")
    expect(countdown).to_have_text(re.compile(r"^6 天 23:5\d:\d\d$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=3000)
    expect(page.locator("#cancel-erase-after")).to_contain_text("冷静期至")
    shot(page, tmp_path, "cancel.png")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/account-cancellation")) as resp:
        page.get_by_role("button", name="撤回注销").click()
    assert resp.value.status == 204
    expect(page.locator("#toast")).to_contain_text("已撤回注销申请")
    expect(page.get_by_role("button", name="申请注销账号")).to_be_visible()
    with server.api() as c:
        assert c.get("/api/v1/me/account-cancellation", headers=auth(token)).json()["status"] == "withdrawn"
        assert c.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_case_complaint_verified_by_sms_then_listed(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138105", "/settings")
    page.get_by_role("link", name="联系我们", exact=True).click()
    expect(page.locator("#hotline")).to_have_text("400-0000-690")
    expect(page.locator("#case-form")).to_contain_text("138****8105")

    # A deletion request needs one of the four grounds: caught before anything is sent.
    page.get_by_text("删除个人信息", exact=True).click()
    ground = page.locator("#case-ground")
    expect(ground).to_be_visible()
    expect(ground.locator("option")).to_have_count(5)
    page.locator("#case-description").fill("请删除我的个人标签")
    tab.requests.clear()
    page.get_by_role("button", name="提交", exact=True).click()
    expect(page.locator("#case-ground-error")).to_have_text("请选择删除理由")
    assert "POST /api/v1/me/cases" not in api_paths(tab.requests)

    # A complaint: submitted, then confirmed with the code texted to the user's own phone.
    page.get_by_text("投诉举报", exact=True).click()
    expect(ground).to_be_hidden()
    page.locator("#case-description").fill("客服热线多次无人接听，希望尽快改进。")
    expect(page.locator("#case-count")).to_have_text("18/2000")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, tmp_path, "contact.png")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/cases")) as resp:
        page.get_by_role("button", name="提交", exact=True).click()
    assert resp.value.status == 201
    assert resp.value.json()["status"] == "awaiting_verification"
    expect(page.locator("#case-status")).to_have_text("待验证身份")
    page.get_by_role("button", name="从开发发件箱填入").click()
    expect(page.locator("#case-code")).to_have_value(re.compile(r"^\d{6}$"))
    with page.expect_response(lambda r: r.url.endswith("/verification")) as resp:
        page.get_by_role("button", name="提交验证").click()
    assert resp.value.status == 200
    expect(page.locator("#case-status")).to_have_text("处理中")
    deadline = resp.value.json()["deadline"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", deadline) and date.fromisoformat(deadline) > date.today()
    expect(page.locator("#case-deadline")).to_contain_text(f"{deadline} 前处理完毕（身份验证后 15 天内）")

    # 我的申请: status, deadline and history.
    page.get_by_role("link", name="查看我的申请").click()
    card = page.locator("#case-list .list-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("投诉举报")
    expect(card).to_contain_text("处理中")
    expect(card).to_contain_text(f"{deadline} 前")
    card.locator("summary").click()
    expect(card.locator(".timeline-item")).to_have_count(2)
    expect(card.locator(".timeline")).to_contain_text("身份已验证")

    # A refusal shows its reasons and the right to go to court (R14).
    with server.api() as c:
        case_id = c.get("/api/v1/me/cases", headers=auth(token)).json()[0]["id"]
    server.cli(
        "cases", "refuse", case_id, "--staff", "web-test", "--reason", "热线已恢复正常接听，无需另行处理"
    )
    page.reload()
    expect(card).to_contain_text("不予处理")
    expect(card.locator(".refusal")).to_contain_text("热线已恢复正常接听")
    expect(card.locator(".refusal")).to_contain_text("人民法院")


def _years_ago(years: int) -> str:
    today = date.today()
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28).isoformat()


def test_minor_needs_guardian_consent_and_guardian_downloads_data(
    server: Server, browser: Browser, tab: Tab, tmp_path: Path
) -> None:
    page = tab.page
    token = signed_in(tab, server, "13800138106", "/me/profile")

    # A birthday that makes the user 16: restricted, and the guardian screen explains why.
    page.locator("#profile-nickname").fill("小明")
    page.locator("#profile-birthday").fill(_years_ago(16))
    page.get_by_role("button", name="保存").click()
    expect(page).to_have_url(re.compile(r"#/me/guardian$"))
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    expect(page.locator("#guardian-required")).to_contain_text("未满 18 周岁")
    with server.api() as c:
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["restricted"] is True
    # Any screen the server refuses (403 guardian_consent_required) leads back here...
    page.goto(server.base_url + "/#/settings/security")
    expect(page).to_have_url(re.compile(r"#/me/guardian$"))
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    # ... while the profile, with the birthday, stays open to the minor.
    page.get_by_role("link", name="个人资料").click()
    expect(page.locator("#profile-birthday")).to_have_value(_years_ago(16))
    expect(page).to_have_url(re.compile(r"#/me/profile$"))

    # Signing in again leads straight to the guardian screen.
    page.evaluate("localStorage.removeItem('hrk.token')")
    page.goto(server.base_url + "/#/login")
    time.sleep(1.1)  # HRK_SMS_RESEND_SECONDS=1 since the sign-up code: a quicker request is a 429
    request_and_fill_code(page, "13800138106")
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/me/guardian$"))
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    token = page.evaluate("localStorage.getItem('hrk.token')")

    # The guardian's phone, its code (dev outbox), and the consent.
    page.locator("#guardian-phone").fill(GUARDIAN_PHONE)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#guardian-send")).to_have_text(re.compile(r"\d+ 秒后重发"))
    page.get_by_role("button", name="从开发发件箱填入").click()
    expect(page.locator("#guardian-code")).to_have_value(re.compile(r"^\d{6}$"))
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/guardian/consent")) as resp:
        page.get_by_role("button", name="确认监护人同意").click()
    assert resp.value.status == 201
    expect(page.locator("#me-nickname")).to_have_text("小明")
    with server.api() as c:
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["restricted"] is False
        assert c.get("/api/v1/me/privacy-settings", headers=auth(token)).status_code == 200
    page.get_by_role("link", name="设置", exact=True).click()
    page.get_by_role("link", name="账号安全和隐私设置").click()
    expect(page.get_by_role("switch", name="个性化推荐")).to_be_visible()

    # The guardian, without an account, in another browser: the policy still comes first.
    with opened_tab(browser) as guardian:
        g = guardian.page
        g.goto(server.base_url + "/#/guardian")
        expect(g.locator("#policy-dialog")).to_be_visible()
        g.wait_for_load_state("networkidle")
        assert api_paths(guardian.requests) == ["GET /api/v1/privacy/policy"]
        g.get_by_role("button", name="同意并继续").click()
        expect(g.get_by_role("heading", name="监护人服务")).to_be_visible()
        g.locator("#gs-phone").fill(GUARDIAN_PHONE)
        time.sleep(1.1)  # HRK_SMS_RESEND_SECONDS=1 since the consent code
        g.get_by_role("button", name="获取验证码").click()
        expect(g.locator("#gs-send")).to_have_text(re.compile(r"\d+ 秒后重发"))
        g.get_by_role("button", name="从开发发件箱填入").click()
        expect(g.locator("#gs-code")).to_have_value(re.compile(r"^\d{6}$"))
        expect(g.get_by_role("radio", name="导出孩子的个人信息")).to_be_checked()
        with g.expect_response(lambda r: r.url.endswith("/api/v1/guardian/requests")) as resp:
            g.get_by_role("button", name="验证并提交").click()
        assert resp.value.status == 202
        status = g.locator("#guardian-export-0-status")
        expect(status).to_have_text("已完成", timeout=30_000)
        expect(g.locator("#guardian-export-0-card")).to_contain_text("小明的个人信息")
        with (
            g.expect_download() as download,
            g.expect_request(lambda r: r.url.endswith("/download")) as fetched,
        ):
            g.get_by_role("button", name="下载", exact=True).click()
        saved = tmp_path / "child.zip"
        download.value.save_as(saved)
        assert "data.json" in zip_names(saved)
        # Fetched with the one-time guardian token, never a user's bearer token.
        headers = fetched.value.headers
        assert headers.get("x-guardian-token") == resp.value.json()[0]["download_token"]
        assert "authorization" not in headers


def test_collection_and_sharing_lists_render(server: Server, tab: Tab) -> None:
    page = tab.page
    agree_on_first_visit(tab, server)
    with server.api() as c:
        collection = c.get("/api/v1/privacy/collection-list").json()["items"]
        sharing = c.get("/api/v1/privacy/sharing-list").json()["items"]

    # Public, like the policy: reachable signed out from the policy screen.
    page.goto(server.base_url + "/#/policy")
    page.get_by_role("link", name="已收集个人信息清单").click()
    cards = page.locator("#collection-list .list-card")
    expect(cards).to_have_count(len(collection))
    expect(page.locator("#main")).to_contain_text("数据地图自动生成")
    for item in collection:  # every card shows what the server generated for its category
        card = page.locator(f".list-card[data-category='{item['category']}']")
        expect(card.locator(".list-card-title")).to_have_text(item["type"])
        expect(card).to_contain_text(item["retention"])
        expect(card).to_contain_text("、".join(item["purposes"]))
    expect(page.locator("#collection-list .badge", has_text="敏感信息")).to_have_count(
        sum(1 for i in collection if i["sensitive"])
    )
    page.get_by_role("link", name="返回").click()
    page.get_by_role("link", name="第三方信息共享清单").click()
    # The server runs the console SMS provider and the local media folder: no third party at all.
    assert sharing == []
    expect(page.locator("#sharing-list .list-card")).to_have_count(0)
    expect(page.locator("#sharing-list")).to_have_text("目前没有向任何第三方共享您的个人信息。")
