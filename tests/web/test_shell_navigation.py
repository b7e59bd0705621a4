"""The web shell behaving like an app (issue 8, part 9), in a real browser against a real server:
the phone's back button and the in-app ←, sheets and dialogs on the back button, password login,
step-up verification in place, a session expiring mid-form, deep links through sign-in, and the
minor's screen offering export and 注销账号.

One server with its job consumer (exports) is shared by the module's tests, each with its own phone
numbers. page.go_back() is the phone's back button.
"""

from __future__ import annotations

import hashlib
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
    launched_browser,
    opened_tab,
    request_and_fill_code,
    shared_server,
    shot,
    sign_up_over_http,
    signed_in,
)
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "abc12345"


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
        tmp_path_factory.mktemp("shell-server"),
        jobs=True,
        HRK_CANCELLATION_COOLING_OFF_DAYS="7",
        # Several users and codes from 127.0.0.1 within a minute or two.
        HRK_SMS_RESEND_SECONDS="1",
        HRK_SMS_IP_HOURLY_LIMIT="500",
    )


def focus_stays_in(page: Page, selector: str, presses: int = 8) -> None:
    """Tab and Shift+Tab never take focus out of the element (a dialog's focus trap)."""
    for key in ["Tab"] * presses + ["Shift+Tab"] * presses:
        page.keyboard.press(key)
        assert page.evaluate("s => document.querySelector(s).contains(document.activeElement)", selector), key


def no_layer_entry(page: Page) -> None:
    """The history entry a sheet or dialog added is gone again."""
    page.wait_for_function("!(history.state && history.state.layer)")


def sign_in_with_password(page: Page, phone: str) -> None:
    page.get_by_role("button", name="密码登录").click()
    page.locator("#login-phone").fill(phone)
    page.locator("#login-password").fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()


def sign_in_with_code(page: Page, phone: str) -> None:
    time.sleep(1.1)  # HRK_SMS_RESEND_SECONDS=1 since the last code to this number: sooner is a 429
    with page.expect_request(lambda r: r.url.endswith("/api/v1/auth/sms-codes")) as asked:
        request_and_fill_code(page, phone)
    # The code request names this browser, so the server can tell a device that signed in before.
    device = asked.value.post_data_json["device"]
    assert device["device_id"] == page.evaluate("localStorage.getItem('hrk.device.id')")
    page.get_by_role("button", name="登录", exact=True).click()


def birth_month(years: int) -> str:
    today = date.today()
    return f"{today.year - years}-{today.month:02d}"


def years_ago(years: int) -> str:
    today = date.today()
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28).isoformat()


# ---------------------------------------------------------------------------------------------


def test_back_button_closes_sheets_and_dialogs_and_in_app_back_goes_back(
    server: Server, tab: Tab, tmp_path: Path
) -> None:
    page, phone = tab.page, "13800138201"
    agree_on_first_visit(tab, server)

    # The policy sheet over the login form: the phone's back button closes it, the typed number stays.
    page.locator("#login-phone").fill(phone)
    page.get_by_role("link", name="《汇容客隐私政策》").click()
    sheet = page.locator("#policy-sheet")
    expect(sheet.locator(".md h3").first).to_be_visible()
    focus_stays_in(page, "#policy-sheet")
    page.go_back()
    expect(sheet).to_have_count(0)
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.locator("#login-phone")).to_have_value(phone)
    expect(page.locator("#login-policy-link")).to_be_focused()  # focus returns to where it was
    # Esc and 关闭 close it too, and take its history entry with them.
    page.get_by_role("link", name="《汇容客隐私政策》").click()
    expect(sheet).to_be_visible()
    page.keyboard.press("Escape")
    expect(sheet).to_have_count(0)
    no_layer_entry(page)
    page.get_by_role("link", name="《汇容客隐私政策》").click()
    page.get_by_role("button", name="关闭").click()
    expect(sheet).to_have_count(0)
    no_layer_entry(page)
    expect(page).to_have_url(re.compile(r"#/login$"))
    # Leaving the login screen and coming back keeps the number too.
    page.get_by_role("link", name="联系我们").click()
    expect(page.get_by_role("heading", name="联系我们")).to_be_visible()
    page.get_by_role("link", name="返回").click()
    expect(page.locator("#login-phone")).to_have_value(phone)

    # Signed in: 我的 → 设置 → 账号安全和隐私设置, then ← is history back, not a new entry.
    token = sign_up_over_http(server, phone)
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)
    page.goto(server.base_url + "/#/me")
    page.get_by_role("link", name="设置", exact=True).click()
    page.get_by_role("link", name="账号安全和隐私设置").click()
    expect(page.get_by_role("switch", name="个性化推荐")).to_be_visible()
    length = page.evaluate("history.length")
    page.get_by_role("link", name="返回").click()
    expect(page).to_have_url(re.compile(r"#/settings$"))
    assert page.evaluate("history.length") == length  # went back: nothing pushed
    # So the phone's back button now walks back to 我的, not forward into the screen just left.
    page.go_back()
    expect(page).to_have_url(re.compile(r"#/me$"))
    expect(page.locator("#me-phone")).to_be_visible()
    page.go_forward()
    expect(page).to_have_url(re.compile(r"#/settings$"))

    # A confirm dialog closes on back too, and nothing happens: still signed in, still on 设置.
    page.get_by_role("button", name="退出登录").click()
    modal = page.get_by_role("alertdialog", name="退出登录？")
    expect(modal).to_be_visible()
    focus_stays_in(page, "#modal-root .modal", presses=3)
    page.go_back()
    expect(modal).to_have_count(0)
    expect(page).to_have_url(re.compile(r"#/settings$"))
    assert page.evaluate("localStorage.getItem('hrk.token')") == token
    # Esc is 取消 there.
    page.get_by_role("button", name="退出登录").click()
    expect(modal).to_be_visible()
    page.keyboard.press("Escape")
    expect(modal).to_have_count(0)
    no_layer_entry(page)
    assert page.evaluate("localStorage.getItem('hrk.token')") == token

    # 设置 ends with 关于 (the server's version) and 退出登录.
    about = page.get_by_role("link", name=re.compile("^关于汇容客"))
    expect(about).to_contain_text(re.compile(r"版本 \d+\.\d+"))
    last = page.locator("#main > *").last
    expect(last).to_have_text("退出登录")
    about.click()
    expect(page.locator("#about-version")).to_have_text(re.compile(r"^版本 \d+\.\d+\.\d+"))
    shot(page, tmp_path, "about.png")

    # Opened straight on a deep screen (no in-app previous entry): ← replaces it with the parent.
    other = page.context.new_page()
    other.goto(server.base_url + "/#/settings/security")
    expect(other.get_by_role("switch", name="个性化推荐")).to_be_visible()
    length = other.evaluate("history.length")
    other.get_by_role("link", name="返回").click()
    expect(other).to_have_url(re.compile(r"#/settings$"))
    assert other.evaluate("history.length") == length
    other.close()


def test_password_login_and_step_up_in_place(server: Server, tab: Tab, tmp_path: Path) -> None:
    page, phone = tab.page, "13800138202"
    token = sign_up_over_http(server, phone)
    with server.api() as c:  # a session signed in by SMS code a moment ago counts as verified
        r = c.put("/api/v1/me/password", json={"password": PASSWORD}, headers=auth(token))
        assert r.status_code == 204, r.text
    agree_on_first_visit(tab, server)

    # The SMS code is the default; 密码登录 switches, keeping the typed number.
    expect(page.locator("#login-code")).to_be_visible()
    expect(page.locator("#login-password")).to_be_hidden()
    page.locator("#login-phone").fill(phone)
    page.get_by_role("button", name="密码登录").click()
    expect(page.get_by_role("heading", name="密码登录")).to_be_visible()
    expect(page.locator("#login-code")).to_be_hidden()
    expect(page.locator(".consent")).to_be_hidden()  # a password cannot register
    expect(page.locator("#login-phone")).to_have_value(phone)
    shot(page, tmp_path, "login-password.png")

    page.locator("#login-password").fill("wrong-pass1")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/sessions")) as wrong:
        page.get_by_role("button", name="登录", exact=True).click()
    assert wrong.value.status == 400
    expect(page.locator("#login-password-error")).to_be_visible()
    assert page.evaluate("localStorage.getItem('hrk.token')") is None

    page.locator("#login-password").fill(PASSWORD)
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/auth/sessions")) as req:
        page.get_by_role("button", name="登录", exact=True).click()
    body = req.value.post_data_json
    assert body["password"] == PASSWORD and "code" not in body and "age" not in body
    expect(page.locator("#me-phone")).to_have_text("手机号 138****8202")

    # A password session is not verified: 申请导出 answers 403 step_up_required, and the page asks
    # for the code in place. Back closes the dialog, and nothing else is said.
    page.goto(server.base_url + "/#/settings/export")
    request = page.get_by_role("button", name="申请导出")
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/data-exports") and r.request.method == "POST"
    ) as first:
        request.click()
    assert first.value.status == 403
    assert first.value.json()["error"]["code"] == "step_up_required"
    dialog = page.get_by_role("dialog", name="验证身份")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("138****8202")
    focus_stays_in(page, "#stepup-dialog")
    page.go_back()
    expect(dialog).to_have_count(0)
    expect(page).to_have_url(re.compile(r"#/settings/export$"))
    expect(page.locator("#main .form-alert")).to_be_hidden()

    # Again: get the code, confirm it, and the export starts without another tap.
    request.click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#stepup-send")).to_have_text(re.compile(r"\d+ 秒后重发"))
    dialog.get_by_role("button", name="从开发发件箱填入").click()
    expect(page.locator("#stepup-code")).to_have_value(re.compile(r"^\d{6}$"))
    shot(page, tmp_path, "step-up.png")
    tab.requests.clear()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/data-exports") and r.request.method == "POST"
    ) as again:
        dialog.get_by_role("button", name="验证并继续").click()
    assert again.value.status == 202
    expect(dialog).to_have_count(0)
    assert api_paths(tab.requests)[:2] == ["POST /api/v1/me/step-up", "POST /api/v1/me/data-exports"]
    expect(page.locator("#export-status")).to_have_text("已完成", timeout=30_000)
    no_layer_entry(page)

    # Verified a moment ago, the password changes without another code; the form offers to sign
    # the other devices out (the sign-up session over HTTP is one), keeping this one.
    page.goto(server.base_url + "/#/settings/password")
    page.locator("#pw-current").fill(PASSWORD)
    page.locator("#pw-new").fill("xyz98765")
    page.locator("#pw-again").fill("xyz98765")
    others = page.get_by_role("checkbox", name=re.compile("同时退出其他设备上的登录"))
    expect(others).not_to_be_checked()
    others.check()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/password")) as changed:
        page.get_by_role("button", name="保存密码").click()
    assert changed.value.status == 204
    assert changed.value.request.post_data_json["sign_out_others"] is True
    expect(page.locator("#toast")).to_contain_text("其他设备已退出登录")
    mine = page.evaluate("localStorage.getItem('hrk.token')")
    with server.api() as c:
        assert c.get("/api/v1/me", headers=auth(token)).status_code == 401
        assert c.get("/api/v1/me", headers=auth(mine)).status_code == 200


def test_session_expiring_mid_form_keeps_the_text_and_the_screen(server: Server, tab: Tab) -> None:
    page, phone = tab.page, "13800138203"
    token = signed_in(tab, server, phone, "/me/profile")
    with server.api() as c:  # for the later sign-ins: fewer texts to one number
        assert (
            c.put("/api/v1/me/password", json={"password": PASSWORD}, headers=auth(token)).status_code == 204
        )

    # Typing on 个人资料 when the session ends on the server (signed out elsewhere).
    page.locator("#profile-nickname").fill("断线之前")
    page.locator("#profile-region").fill("浙江省杭州市")
    page.locator("#rn-id").fill("11010519491231002X")  # an ID number is never kept in the browser
    with server.api() as c:
        assert c.delete("/api/v1/auth/sessions/current", headers=auth(token)).status_code == 204
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me") and r.request.method == "PATCH"
    ) as expired:
        page.get_by_role("button", name="保存", exact=True).click()
    assert expired.value.status == 401
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.locator("#toast")).to_have_text("登录已失效，请重新登录，您填写的内容已保留")
    kept = page.evaluate("JSON.stringify(sessionStorage)")
    assert "断线之前" in kept and "11010519491231002X" not in kept

    # Signing in again returns to the same screen with the typed text.
    sign_in_with_code(page, phone)
    expect(page).to_have_url(re.compile(r"#/me/profile$"))
    expect(page.locator("#profile-nickname")).to_have_value("断线之前")
    expect(page.locator("#profile-region")).to_have_value("浙江省杭州市")
    expect(page.locator("#rn-id")).to_have_value("")
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me") and r.request.method == "PATCH"
    ) as saved:
        page.get_by_role("button", name="保存", exact=True).click()
    assert saved.value.status == 200
    assert saved.value.json()["nickname"] == "断线之前"
    assert page.evaluate("JSON.stringify(sessionStorage)").find("断线之前") == -1  # used once, then gone

    # A deep link opened signed out goes through the login screen and comes back.
    page.evaluate("localStorage.removeItem('hrk.token')")
    page.goto(server.base_url + "/#/settings/consents")
    expect(page).to_have_url(re.compile(r"#/login$"))
    sign_in_with_password(page, phone)
    expect(page).to_have_url(re.compile(r"#/settings/consents$"))
    expect(page.get_by_role("heading", name="授权管理")).to_be_visible()

    # Signing out on purpose forgets it: the next sign-in lands on 我的.
    page.goto(server.base_url + "/#/settings")
    page.get_by_role("button", name="退出登录").click()
    page.get_by_role("alertdialog").get_by_role("button", name="退出登录").click()
    expect(page.locator("#login-phone")).to_be_visible()
    sign_in_with_password(page, phone)
    expect(page).to_have_url(re.compile(r"#/me$"))


def test_minor_screen_offers_export_and_cancellation(server: Server, tab: Tab) -> None:
    page, phone = tab.page, "13800138204"
    token = sign_up_over_http(server, phone, age={"birth_month": birth_month(16)})
    with server.api() as c:
        # The birthday in the profile, within the declared month: a minor either way.
        r = c.patch("/api/v1/me", json={"birthday": years_ago(16)}, headers=auth(token))
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/me/guardian", headers=auth(token)).json()["restricted"] is True
    agree_on_first_visit(tab, server)
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)
    page.goto(server.base_url + "/#/me/guardian")
    expect(page.get_by_role("heading", name="需要监护人同意")).to_be_visible()
    expect(page.locator("#guardian-required")).to_contain_text("下载您的数据、注销账号")

    # 下载我的数据 from here opens and works: no redirect back to the guardian screen.
    page.get_by_role("link", name="下载我的数据").click()
    expect(page).to_have_url(re.compile(r"#/settings/export$"))
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/data-exports") and r.request.method == "POST"
    ) as r:
        page.get_by_role("button", name="申请导出").click()
    assert r.value.status == 202
    expect(page.locator("#export-status")).to_have_text("已完成", timeout=30_000)
    expect(page).to_have_url(re.compile(r"#/settings/export$"))
    page.get_by_role("link", name="返回").click()
    expect(page).to_have_url(re.compile(r"#/me/guardian$"))

    # So does 注销账号.
    page.get_by_role("link", name="注销账号").click()
    expect(page).to_have_url(re.compile(r"#/settings/cancel$"))
    page.get_by_role("button", name="申请注销账号").click()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/account-cancellation") and r.request.method == "POST"
    ) as r:
        page.get_by_role("alertdialog", name="确认注销账号？").get_by_role("button", name="确认注销").click()
    assert r.value.status == 202
    expect(page.locator("#cancel-status")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/settings/cancel$"))
    with server.api() as c:
        assert c.get("/api/v1/me/account-cancellation", headers=auth(token)).json()["status"] == "cooling_off"


def test_wording_retry_hints_and_the_challenge_solver(server: Server, tab: Tab) -> None:
    """Every string in the client addresses the user as 您 and says 注销账号; a wait is said once;
    the proof-of-work the server may ask for before texting a code is solved in the page."""
    static = Path(__file__).resolve().parents[2] / "src" / "huirongke" / "web"
    sources = [*static.glob("static/js/**/*.js"), static / "templates" / "index.html"]
    assert len(sources) > 20
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for wrong in ("你", "注销账户", "注销帐户", "删除账号"):
            assert wrong not in text, f"{path.name}: {wrong}"

    # A 429's message and its wait: one retry hint, not "请稍后再试（请 5 分钟后重试）".
    agree_on_first_visit(tab, server)
    text = tab.page.evaluate(
        """async () => {
            const { ApiError, errorText } = await import('/static/js/api.js');
            const err = new ApiError(429, 'rate_limited', '操作过于频繁，请稍后再试');
            err.retryAfter = 300;
            return errorText(err);
        }"""
    )
    assert text == "操作过于频繁，请 5 分钟后再试"

    # The page's SHA-256 and its answer to a challenge, checked with Python's hashlib.
    challenge = {"id": "1700000000.12.nonce.mac", "algorithm": "sha256-leading-zero-bits", "bits": 12}
    digest, solution = tab.page.evaluate(
        """async (challenge) => {
            const { sha256, solveChallenge } = await import('/static/js/challenge.js');
            const words = sha256(new TextEncoder().encode('abc'));
            const hex = words.map((w) => w.toString(16).padStart(8, '0')).join('');
            return [hex, await solveChallenge(challenge)];
        }""",
        challenge,
    )
    assert digest == hashlib.sha256(b"abc").hexdigest()
    proof = hashlib.sha256(f"{challenge['id']}:{solution}".encode()).digest()
    assert int.from_bytes(proof, "big") >> (256 - 12) == 0


def test_tab_bar_shows_a_tab_once_its_feature_exists(server: Server, tab: Tab) -> None:
    page = tab.page
    signed_in(tab, server, "13800138205", "/me")
    expect(page.locator("#me-phone")).to_be_visible()
    # Today only 我的 exists: a bar with one tab is not shown.
    expect(page.locator(".tabbar")).to_have_count(0)
    # The registry itself, in fresh module instances (however the shell packs the app): the bar
    # lists the tabs whose screens are registered, in the order 首页 / 客源 / 消息 / 我的, and only
    # once there are two. ui.js is loaded first and the router is the very module it imports.
    labels = page.evaluate(
        """async () => {
            const uiUrl = new URL('/static/js/ui.js', location.href).href;
            const source = await (await fetch(uiUrl)).text();
            const spec = /from\\s*['"](\\.\\/router[^'"]*)['"]/.exec(source)[1];
            const ui = await import(uiUrl);
            const router = await import(new URL(spec, uiUrl).href);
            const bar = (tab) => [...ui.page({ title: 't', tab }).el.querySelectorAll('.tabbar-item')]
                .map((a) => [a.textContent, a.getAttribute('aria-current')]);
            router.route('/me', () => document.createElement('div'));
            const alone = bar('me');
            router.route('/home', () => document.createElement('div'));
            return [alone, bar('home')];
        }"""
    )
    assert labels == [[], [["首页", "page"], ["我的", None]]]
