"""Configured operator facts in the served policy (P43): a start with other facts publishes the same
template with the new values, and asks users to agree again only when the controller or the court
changes (P41). Each "restart" is a new context and app on the same database and data folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from privacy_support import assert_error, publish, run_cli, sign_in_again
from sqlalchemy import update

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.privacy.models import PolicyVersion
from huirongke.privacy.policy import effective_date, render_policy

PHONE = "13800138000"


@contextmanager
def restarted(settings: Settings, **changed: Any) -> Iterator[TestClient]:
    """The service started again with some settings changed: the same database, keys and media."""
    again = settings.model_copy(update=changed)
    ctx = build_context(again, immediate_jobs=True)
    try:
        with TestClient(create_app(ctx=ctx), base_url="http://testserver") as client:
            yield client
    finally:
        ctx.db.dispose()


def policy(client: TestClient) -> dict[str, Any]:
    r = client.get("/api/v1/privacy/policy")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_new_hotline_is_published_without_asking_anyone_again(client, settings):
    token, _ = sign_up(client, PHONE)
    first = policy(client)
    assert (first["version"], first["requires_consent"], first["consent_version"]) == (1, True, 1)
    assert "客服与投诉热线：400-0000-690" in first["text"]

    with restarted(settings, hotline="400-1111-222") as again:
        p = policy(again)
        assert (p["version"], p["requires_consent"], p["consent_version"]) == (2, False, 1)
        assert "400-1111-222" in p["text"] and "400-0000-690" not in p["text"]
        day = effective_date(datetime.fromisoformat(p["published_at"]))
        assert p["text"] == render_policy(settings.model_copy(update={"hotline": "400-1111-222"}), 2, day)
        assert (
            p["changes"]
            == "根据运营配置更新：客服与投诉热线：400-0000-690 → 400-1111-222。本次更新无需您重新同意。"
        )
        # The user who agreed to version 1 is not asked again: not on a request, not at sign-in.
        assert again.get("/api/v1/me", headers=auth(token)).status_code == 200
        assert sign_in_again(again, PHONE).json()["policy_update_required"] is False

    with restarted(settings, hotline="400-1111-222") as third:
        assert policy(third)["version"] == 2, "the same facts publish nothing"


def test_a_new_company_asks_everyone_to_agree_again(client, settings):
    token, _ = sign_up(client, PHONE)
    with restarted(settings, company_name="杭州新运营科技有限公司") as again:
        p = policy(again)
        assert (p["version"], p["requires_consent"], p["consent_version"]) == (2, True, 2)
        assert "- 运营者：杭州新运营科技有限公司" in p["text"]
        assert p["changes"].endswith("运营者或争议管辖发生变化，请阅读后重新同意。")
        assert_error(again.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
        assert sign_in_again(again, PHONE).json()["policy_update_required"] is True
        r = again.post("/api/v1/privacy/policy-agreements", json={"version": 2}, headers=auth(token))
        assert r.status_code == 201, r.text
        assert again.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_a_new_court_asks_everyone_to_agree_again_and_a_later_contact_change_does_not(client, settings):
    token, _ = sign_up(client, PHONE)
    with restarted(settings, jurisdiction_city="杭州市") as again:
        assert policy(again)["consent_version"] == 2
        assert_error(again.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
    with restarted(settings, jurisdiction_city="杭州市", contact_email="dpo@example.cn") as third:
        p = policy(third)
        assert (p["version"], p["requires_consent"], p["consent_version"]) == (3, False, 2)
        # Agreeing to the current version (3) covers version 2, which asked for it.
        r = third.post("/api/v1/privacy/policy-agreements", json={"version": 3}, headers=auth(token))
        assert r.status_code == 201, r.text
        assert third.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_a_policy_published_by_hand_is_not_replaced(client, ctx, settings):
    sign_up(client, PHONE)
    version = publish(ctx, "# 汇容客隐私政策（运营者自行撰写）\n\n客服热线见官网。", "运营者撰写的新版")
    with restarted(settings, hotline="400-1111-222") as again:
        p = policy(again)
        assert (p["version"], p["requires_consent"]) == (version, True)
        assert "运营者自行撰写" in p["text"]


def test_a_version_from_before_facts_were_kept_is_replaced_by_publishing_the_template(
    client, ctx, settings, monkeypatch
):
    """A version 1 seeded by an older release kept no facts: it stays until an operator publishes the
    template (`privacy publish-template`), whose facts later starts then follow."""
    token, _ = sign_up(client, PHONE)
    with ctx.db.session() as s:
        s.execute(update(PolicyVersion).where(PolicyVersion.version == 1).values(facts=None))
    with restarted(settings, hotline="400-1111-222") as again:
        assert policy(again)["version"] == 1, "no facts, no automatic republication"

    r = run_cli(monkeypatch, settings, "privacy", "publish-template", "--changes", "按新版模板重新发布")
    assert r.exit_code == 0, r.output
    assert "已按模板发布隐私政策第 2 版" in r.output
    with restarted(settings) as again:
        p = policy(again)
        assert (p["version"], p["requires_consent"], p["changes"]) == (2, True, "按新版模板重新发布")
        assert_error(again.get("/api/v1/me", headers=auth(token)), 428, "policy_update_required")
    with restarted(settings, hotline="400-1111-222") as again:
        p = policy(again)
        assert (p["version"], p["requires_consent"], p["consent_version"]) == (3, False, 2)
