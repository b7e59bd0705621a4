"""The web client in a real browser (Debian's Chromium via Playwright) against a real server process.

Each test starts `huirongke serve` on a free port with its own data folder, drives the shell at
375×812 the way a user would, and stops the server at the end. Screenshots go to tmp_path; set
HRK_WEB_SCREENSHOTS=docs/img to also refresh the README images (login.png, profile.png, settings.png).
The server and browser helpers live in browser_support.py; the privacy screens in
test_privacy_screens.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_support import (
    Server,
    Tab,
    agree_on_first_visit,
    api_paths,
    launched_browser,
    make_avatar,
    opened_tab,
    publish_policy,
    request_and_fill_code,
    server_for_test,
    shot,
    sign_up_over_http,
)
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

PHONE = "13800138000"


@pytest.fixture
def server(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Server]:
    yield from server_for_test(request, backend, tmp_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser() as chromium:
        yield chromium


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    with opened_tab(browser) as t:
        yield t


# ---------------------------------------------------------------------------------------------
# Tests


def test_first_visit_sign_up_profile_and_privacy_switches(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page

    # 1. First visit: the policy dialog comes before anything else, and only the policy is fetched.
    page.goto(server.base_url + "/")
    dialog = page.locator("#policy-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="汇容客隐私政策", exact=True).first).to_be_visible()
    expect(dialog.locator(".md h3").first).to_be_visible()  # "## " headings rendered as headings
    expect(dialog.locator(".md li").first).to_be_visible()  # "- " bullets rendered as list items
    expect(dialog.locator(".policy-changes")).to_have_count(0)  # nothing "changed" on a first visit
    assert page.evaluate("localStorage.getItem('hrk.policy.agreedVersion')") is None
    page.wait_for_load_state("networkidle")
    shot(page, tmp_path, "policy.png")
    before_agreeing = list(tab.requests)
    assert api_paths(before_agreeing) == ["GET /api/v1/privacy/policy"], before_agreeing
    for _method, url in before_agreeing:
        parts = urlsplit(url)
        assert parts.netloc == urlsplit(server.base_url).netloc, url  # nothing leaves the site
        assert parts.path == "/" or parts.path.startswith("/static/") or parts.path.startswith("/api/"), url

    page.get_by_role("button", name="同意并继续").click()

    # 2. Login. The consent box starts unticked; the code comes from the dev outbox.
    expect(page.locator("#login-phone")).to_be_visible()
    assert page.evaluate("localStorage.getItem('hrk.policy.agreedVersion')") == "1"
    assert "GET /api/v1/me" not in api_paths(tab.requests)
    consent = page.get_by_role("checkbox", name="我已阅读并同意《汇容客隐私政策》")
    expect(consent).not_to_be_checked()
    expect(page.locator(".dev-hint")).to_be_visible()
    request_and_fill_code(page, PHONE)
    consent.check()
    shot(page, tmp_path, "login.png")
    expect(page.locator("#login-age")).to_be_hidden()  # asked only once the number turns out new
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/sessions")) as first:
        page.get_by_role("button", name="登录", exact=True).click()
    assert first.value.status == 422
    assert first.value.json()["error"]["code"] == "age_required"
    assert "age" not in first.value.request.post_data_json

    # 2b. A new number: the sign-up step asks for the age (nothing chosen for the user).
    expect(page.locator("#login-age")).to_be_visible()
    expect(page.get_by_role("radio", name="我已年满18周岁")).not_to_be_checked()
    page.get_by_role("button", name="注册并登录").click()
    expect(page.locator("#login-age-error")).to_have_text("请确认您的年龄")
    page.get_by_role("radio", name="我已年满18周岁").check()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/auth/sessions")) as req:
        page.get_by_role("button", name="注册并登录").click()
    body = req.value.post_data_json
    assert body["accept_policy_version"] == 1
    assert body["age"] == {"adult": True}
    device_id = page.evaluate("localStorage.getItem('hrk.device.id')")
    assert body["device"]["device_id"] == device_id
    assert set(body["device"]) == {"model", "os_version", "device_id", "network_type"}

    # 3. 我的: masked phone; tapping the header (avatar) opens 个人资料.
    expect(page.locator("#me-phone")).to_have_text("手机号 138****8000")
    # The tab bar shows once a second tab's feature exists; 我的 alone has nothing to switch to.
    expect(page.locator(".tabbar")).to_have_count(0)
    page.locator("#me-header").click()

    # 4. 个人资料: nickname, avatar, gender, birthday, a tag, region; then save.
    expect(page.locator("#profile-nickname")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/media") and r.status == 201):
        page.locator("#avatar-file").set_input_files(str(make_avatar(tmp_path / "avatar.png")))
    expect(page.locator("#toast")).to_have_text("头像已更新")
    expect(page.locator(".avatar-card img.avatar")).to_have_attribute("src", re.compile(r"^/media/"))
    page.locator("#profile-nickname").fill("王小明")
    page.get_by_text("男", exact=True).click()
    page.locator("#profile-birthday").fill("1990-05-01")
    page.locator("#profile-tag-input").fill("保险顾问")
    page.get_by_role("button", name="添加").click()
    expect(page.locator("#profile-tags .chip")).to_have_text(["保险顾问"])
    page.locator("#profile-region").fill("福建省厦门市")
    with page.expect_response(lambda r: r.request.method == "PATCH" and r.url.endswith("/api/v1/me")) as resp:
        page.get_by_role("button", name="保存").click()
    assert resp.value.status == 200, resp.value.text()
    expect(page.locator("#toast")).to_have_text("资料已保存")

    # 5. A reload shows the saved values.
    page.reload()
    expect(page.locator("#profile-nickname")).to_have_value("王小明")
    expect(page.locator("#profile-region")).to_have_value("福建省厦门市")
    expect(page.locator("#profile-birthday")).to_have_value("1990-05-01")
    expect(page.locator("#profile-tags .chip")).to_have_text(["保险顾问"])
    expect(page.get_by_role("radio", name="男")).to_be_checked()
    expect(page.locator(".avatar-card img.avatar")).to_have_attribute("src", re.compile(r"^/media/"))
    expect(page.locator("#rn-name")).to_be_visible()  # not verified yet: the real-name form shows
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, tmp_path, "profile.png")

    # 6. 设置 → 账号安全和隐私设置: show_region on, show_phone stays off.
    page.get_by_role("link", name="返回").click()
    expect(page.locator("#me-nickname")).to_have_text("王小明")
    page.get_by_role("link", name="设置", exact=True).click()
    expect(page.get_by_role("link", name="隐私政策", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="联系我们", exact=True)).to_be_visible()
    page.get_by_role("link", name="账号安全和隐私设置").click()
    show_phone = page.get_by_role("switch", name="在个人主页展示手机号")
    show_region = page.get_by_role("switch", name="在个人主页展示地区")
    expect(show_phone).not_to_be_checked()
    expect(show_region).not_to_be_checked()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/privacy-settings") and r.request.method == "PATCH"
    ):
        show_region.click()
    expect(page.locator("#toast")).to_contain_text("已开启")
    expect(show_region).to_be_checked()
    expect(show_phone).not_to_be_checked()
    expect(page.locator("#session-list .session")).to_have_count(1)
    expect(page.locator("#session-list .badge")).to_have_text("本机")
    shot(page, tmp_path, "settings.png")

    # 7. The public profile shows the nickname and region, never the phone number.
    page.get_by_role("link", name="返回").click()
    page.get_by_role("link", name="返回").click()
    page.get_by_role("link", name="个人资料", exact=True).click()
    page.get_by_role("link", name="查看我的公开主页").click()
    expect(page.locator("#public-nickname")).to_have_text("王小明")
    expect(page.locator("#public-region")).to_contain_text("福建省厦门市")
    expect(page.locator("#public-profile .chip")).to_have_text(["保险顾问"])
    expect(page.locator("#public-phone")).to_have_count(0)
    text = page.locator("#main").inner_text()
    assert "13800138000" not in text and "138****8000" not in text and "+86" not in text
    shot(page, tmp_path, "public-profile.png")

    # 8. With show_phone on, the public profile shows the number.
    page.get_by_role("link", name="管理展示内容").click()
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/me/privacy-settings") and r.request.method == "PATCH"
    ):
        page.get_by_role("switch", name="在个人主页展示手机号").click()
    expect(page.get_by_role("switch", name="在个人主页展示手机号")).to_be_checked()
    page.go_back()
    expect(page.locator("#public-phone")).to_contain_text("13800138000")
    expect(page.locator("#public-region")).to_contain_text("福建省厦门市")


def test_unticked_consent_blocks_registration(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    page.goto(server.base_url + "/")

    # 不同意 shows a plain screen; nothing but the policy was requested; reading again works.
    page.get_by_role("button", name="不同意").click()
    expect(page.get_by_role("heading", name="需要您的同意才能继续")).to_be_visible()
    assert api_paths(tab.requests) == ["GET /api/v1/privacy/policy"]
    assert page.evaluate("localStorage.getItem('hrk.policy.agreedVersion')") is None
    page.get_by_role("button", name="重新阅读隐私政策").click()
    page.get_by_role("button", name="同意并继续").click()

    # The Markdown renderer builds text nodes only: markup in the policy text stays text.
    rendered = page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import('/static/js/markdown.js');
            const box = document.createElement('div');
            box.append(renderMarkdown(text));
            return { html: box.innerHTML, tags: [...box.querySelectorAll('*')].map((e) => e.tagName) };
        }""",
        "## 标题 <b>x</b>\n\n- <img src=x onerror=alert(1)>\n\n段落 **重点**",
    )
    assert rendered["tags"] == ["H3", "UL", "LI", "P", "STRONG"], rendered
    assert "<img" not in rendered["html"] and "&lt;img src=x" in rendered["html"]

    # Registering without ticking the box: the server answers 428 and the page says to tick it.
    request_and_fill_code(page, "13900139000")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/sessions")) as resp:
        page.get_by_role("button", name="登录", exact=True).click()
    assert resp.value.status == 428
    assert "accept_policy_version" not in resp.value.request.post_data_json
    alert = page.locator(".login-form .form-alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("勾选")
    expect(page.locator(".consent")).to_have_class(re.compile("is-attention"))
    assert page.evaluate("localStorage.getItem('hrk.token')") is None
    expect(page.locator("#send-code")).to_have_text(re.compile(r"^5\d 秒后重发$"))  # counting down
    expect(page.locator("#send-code")).to_be_disabled()
    shot(page, tmp_path, "login-consent-required.png")

    # The policy link opens the policy over the form, which keeps what was typed.
    page.get_by_role("link", name="《汇容客隐私政策》").click()
    expect(page.locator("#policy-sheet .md h3").first).to_be_visible()
    page.get_by_role("button", name="关闭").click()
    expect(page.locator("#login-phone")).to_have_value("13900139000")

    # Ticking it and declaring the age (the sign-up step shows with the 428) lets the same code
    # register the account.
    page.get_by_role("checkbox", name="我已阅读并同意《汇容客隐私政策》").check()
    page.get_by_role("radio", name="填写出生年月").check()
    page.locator("#age-year").select_option("1990")
    page.locator("#age-month").select_option("05")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/auth/sessions")) as req:
        page.get_by_role("button", name="注册并登录").click()
    assert req.value.post_data_json["age"] == {"birth_month": "1990-05"}
    expect(page.locator("#me-phone")).to_have_text("手机号 139****9000")


def test_new_policy_version_asks_again_with_changes(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    agree_on_first_visit(tab, server)
    token = sign_up_over_http(server, "13700137000")
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)
    page.goto(server.base_url + "/#/me")
    expect(page.locator("#me-phone")).to_have_text("手机号 137****7000")

    # A newer version on the server: the dialog returns on the next visit, changes on top, and
    # nothing but the policy is requested until the user agrees.
    version = publish_policy(server, tmp_path, "新增“个人主页展示设置”的说明")
    tab.requests.clear()
    page.reload()
    dialog = page.locator("#policy-dialog")
    expect(dialog.get_by_role("heading", name="隐私政策已更新")).to_be_visible()
    expect(dialog.locator(".policy-changes")).to_contain_text("新增“个人主页展示设置”的说明")
    page.wait_for_load_state("networkidle")
    assert api_paths(tab.requests) == ["GET /api/v1/privacy/policy"]
    shot(page, tmp_path, "policy-update.png")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/policy-agreements")) as resp:
        page.get_by_role("button", name="同意并继续").click()
    assert resp.value.status == 201
    expect(page.locator("#me-phone")).to_have_text("手机号 137****7000")
    assert page.evaluate("localStorage.getItem('hrk.policy.agreedVersion')") == str(version)

    # Published while the app is open: the next API call answers 428 and the dialog shows again.
    publish_policy(server, tmp_path, "调整了同意记录的展示方式")
    page.get_by_role("link", name="设置", exact=True).click()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/privacy-settings")) as blocked:
        page.get_by_role("link", name="账号安全和隐私设置").click()
    assert blocked.value.status == 428
    expect(dialog.locator(".policy-changes")).to_contain_text("调整了同意记录的展示方式")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/policy-agreements")) as resp:
        page.get_by_role("button", name="同意并继续").click()
    assert resp.value.status == 201
    # The screen that was blocked loads once agreed; personalisation is off until the user turns it on.
    expect(page.get_by_role("switch", name="个性化推荐")).not_to_be_checked()
    page.get_by_role("link", name="返回").click()
    page.get_by_role("link", name="隐私政策", exact=True).click()
    records = page.locator("#agreement-list .record")
    expect(records).to_have_count(3)
    expect(records.first).to_contain_text(f"第 {version + 1} 版")


def test_real_name_password_and_sign_out(server: Server, tab: Tab) -> None:
    page = tab.page
    agree_on_first_visit(tab, server)
    token = sign_up_over_http(server, "13600136000")
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)

    # Real-name needs its own, separate consent: unticked, the form says so and sends nothing.
    page.goto(server.base_url + "/#/me/profile")
    page.locator("#rn-name").fill("王小明")
    page.locator("#rn-id").fill("11010519491231002x")
    tab.requests.clear()
    page.get_by_role("button", name="提交认证").click()
    expect(page.locator(".rn-form .form-alert")).to_contain_text("勾选")
    assert "POST /api/v1/me/real-name" not in api_paths(tab.requests)
    page.get_by_role("checkbox", name=re.compile("我单独同意")).check()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/real-name") and r.status == 201):
        page.get_by_role("button", name="提交认证").click()
    assert "PUT /api/v1/privacy/consents/real_name" in api_paths(tab.requests)
    expect(page.locator("#real-name-status")).to_have_text("待审核")
    expect(page.locator("#real-name")).to_contain_text("王**")
    expect(page.locator("#real-name")).not_to_contain_text("11010519491231002")

    # 设置登录密码: mismatched confirmation is caught in the page; a good one is saved.
    page.goto(server.base_url + "/#/settings/security")
    page.get_by_role("link", name="设置登录密码").click()
    page.locator("#pw-new").fill("abc12345")
    page.locator("#pw-again").fill("abc12346")
    page.get_by_role("button", name="保存密码").click()
    expect(page.locator("#pw-again-error")).to_have_text("两次输入的密码不一致")
    page.locator("#pw-again").fill("abc12345")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/password")) as resp:
        page.get_by_role("button", name="保存密码").click()
    assert resp.value.status == 204
    expect(page.get_by_role("link", name="修改登录密码")).to_be_visible()

    # 退出登录, at the bottom of 设置, asks first; 取消 keeps the session.
    page.goto(server.base_url + "/#/settings")
    page.get_by_role("button", name="退出登录").click()
    modal = page.get_by_role("alertdialog", name="退出登录？")
    expect(modal).to_be_visible()
    modal.get_by_role("button", name="取消").click()
    expect(modal).to_have_count(0)
    assert page.evaluate("localStorage.getItem('hrk.token')") == token
    page.get_by_role("button", name="退出登录").click()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/sessions/current")) as resp:
        page.get_by_role("alertdialog").get_by_role("button", name="退出登录").click()
    assert resp.value.status == 204
    expect(page.locator("#login-phone")).to_be_visible()
    assert page.evaluate("localStorage.getItem('hrk.token')") is None
    with server.api() as c:
        assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # 联系我们 works signed out too, with the hotline from the template.
    page.get_by_role("link", name="联系我们", exact=True).click()
    expect(page.locator("#hotline")).to_have_text("400-0000-690")
    expect(page.locator("#hotline")).to_have_attribute("href", "tel:4000000690")
    expect(page.locator("#main")).to_contain_text("15 天内")
