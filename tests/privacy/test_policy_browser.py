"""The web client and republished versions (P41, P43): a version that only updates contact facts
shows no agreement dialog to a browser that agreed before; a new company does. Each restart is a
new `huirongke serve` on the same data folder (a new port, so the browser's storage is carried over
by hand, as the same browser would keep it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from web.browser_support import launched_browser, opened_tab, running_server, server_env, signed_in

pytestmark = pytest.mark.browser
PHONE = "13700137001"


def test_only_a_change_that_needs_consent_shows_the_dialog_again(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path / "data")
    if backend == "postgres":
        ctx = request.getfixturevalue("ctx")  # empties the shared database first
        env.update(HRK_DATABASE_URL=str(ctx.settings.database_url), HRK_DATA_DIR=str(ctx.settings.data_dir))
        if ctx.settings.redis_url:
            env["HRK_REDIS_URL"] = str(ctx.settings.redis_url)

    with launched_browser() as chromium, opened_tab(chromium) as tab:
        page = tab.page
        with running_server(tmp_path, env) as server:
            token = signed_in(tab, server, PHONE)
            expect(page.locator("#me-phone")).to_have_text("手机号 137****7001")
            stored = page.evaluate("() => ({...localStorage})")
        assert stored["hrk.policy.agreedVersion"] == "1"

        def reopen(base_url: str) -> None:
            page.goto(base_url + "/#/me")
            page.evaluate(
                "s => { for (const [k, v] of Object.entries(s)) localStorage.setItem(k, v) }", stored
            )
            page.reload()

        with running_server(tmp_path, {**env, "HRK_HOTLINE": "400-1111-222"}) as server:
            with server.api() as c:
                policy = c.get("/api/v1/privacy/policy").json()
                assert (policy["version"], policy["consent_version"]) == (2, 1)
                assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            reopen(server.base_url)
            expect(page.locator("#me-phone")).to_have_text("手机号 137****7001")
            expect(page.locator("#policy-dialog")).to_have_count(0)

        with running_server(
            tmp_path, {**env, "HRK_HOTLINE": "400-1111-222", "HRK_COMPANY_NAME": "杭州新运营科技有限公司"}
        ) as server:
            reopen(server.base_url)
            dialog = page.locator("#policy-dialog")
            expect(dialog.get_by_role("heading", name="隐私政策已更新")).to_be_visible()
            expect(dialog.locator(".policy-changes")).to_contain_text(
                "运营者：厦门惠榕软件科技有限公司 → 杭州新运营科技有限公司"
            )
            with page.expect_response(lambda r: r.url.endswith("/api/v1/privacy/policy-agreements")) as resp:
                page.get_by_role("button", name="同意并继续").click()
            assert resp.value.status == 201
            expect(page.locator("#me-phone")).to_have_text("手机号 137****7001")
            assert page.evaluate("localStorage.getItem('hrk.policy.agreedVersion')") == "3"
