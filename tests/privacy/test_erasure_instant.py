"""Cancellation with HRK_CANCELLATION_COOLING_OFF_DAYS=0: erasure starts at once (API.md), and the
`huirongke privacy residue` command proves what is and is not left."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from erasure_support import NEEDLES, NICK, REGION, TAG, assert_erased, assert_phone_is_free, make_subject
from privacy_support import PHONE, count, run_cli

from conftest import auth, sign_up
from huirongke.kit.clock import utcnow


@pytest.fixture
def settings(settings):
    settings.cancellation_cooling_off_days = 0
    return settings


def test_cancellation_erases_at_once(client, ctx):
    subj = make_subject(client, ctx)
    before = utcnow()
    r = client.post("/api/v1/me/account-cancellation", headers=auth(subj.token))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "cooling_off"
    assert abs(datetime.fromisoformat(body["erase_after"]) - before) < timedelta(minutes=1)
    assert_erased(client, ctx, subj)
    assert count(ctx, "audit_events", "action = 'account.erased'") == 1
    assert_phone_is_free(client, subj.me["id"])


def test_the_new_account_inherits_nothing(client, ctx):
    subj = make_subject(client, ctx, other=False)
    assert client.post("/api/v1/me/account-cancellation", headers=auth(subj.token)).status_code == 202
    token, _ = sign_up(client, PHONE)
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 202
    status = client.get(f"/api/v1/me/data-exports/{r.json()['id']}", headers=auth(token)).json()
    data = client.get(status["download_url"], headers=auth(token))
    assert data.status_code == 200
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data.content)) as zf:
        exported = json.loads(zf.read("data.json"))
        assert [n for n in zf.namelist() if n.startswith("media/")] == []
    blob = json.dumps(exported, ensure_ascii=False)
    assert subj.me["id"] not in blob
    for needle in NEEDLES:
        assert needle not in blob
    by_table = {c["table"]: c["rows"] for c in exported["categories"]}
    assert "real_name_verifications" not in by_table and "media" not in by_table
    assert "privacy_cases" not in by_table


def test_residue_cli_exit_codes(client, ctx, settings, monkeypatch):
    subj = make_subject(client, ctx, other=False)
    # a live subject: hits, exit 1, and the report names places, never the data itself
    r = run_cli(monkeypatch, settings, "privacy", "residue", "--phone", PHONE, "--text", NICK, "--text", TAG)
    assert r.exit_code == 1, r.output
    assert "发现残留" in r.output
    assert "users.nickname_enc" in r.output
    assert NICK not in r.output and TAG not in r.output and "13800138000" not in r.output
    # the phone alone is never stored in the clear
    r = run_cli(monkeypatch, settings, "privacy", "residue", "--phone", "+86 138 0013 8000")
    assert r.exit_code == 0, r.output

    assert client.post("/api/v1/me/account-cancellation", headers=auth(subj.token)).status_code == 202
    args = ["privacy", "residue", "--phone", PHONE]
    for needle in [NICK, REGION, TAG, *NEEDLES]:
        args += ["--text", needle]
    r = run_cli(monkeypatch, settings, *args)
    assert r.exit_code == 0, r.output
    assert "未发现残留" in r.output


def test_residue_cli_refuses_bad_arguments(ctx, settings, monkeypatch):
    assert run_cli(monkeypatch, settings, "privacy", "residue").exit_code == 2
    r = run_cli(monkeypatch, settings, "privacy", "residue", "--phone", "12345")
    assert r.exit_code == 2
    assert "手机号码格式无效" in r.output
