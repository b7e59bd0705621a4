"""Account cancellation with the default 7-day cooling-off, and erasure that survives a crash at any
step (P15, P36, R05, R13). The residue scanner proves both that it finds data and that none is left."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from erasure_support import (
    NICK,
    REGION,
    TAG,
    assert_erased,
    assert_phone_is_free,
    cancellation_id,
    make_subject,
    step_names,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from privacy_support import PHONE, assert_error, count, step_up
from sqlalchemy import select

from conftest import auth, latest_code, sign_up
from huirongke.accounts.models import User
from huirongke.kit.clock import clock, utcnow
from huirongke.kit.errors import AppError
from huirongke.privacy import erasure
from huirongke.privacy.residue import scan

STEPS = step_names()


@pytest.fixture
def settings(settings):
    # Many sign-ups in one test (hypothesis); the per-IP hourly cap counts real time, not the clock.
    settings.sms_ip_hourly_limit = 10_000
    settings.signin_ip_hourly_limit = 10_000
    return settings


class Crash(Exception):
    pass


def crash_at(*steps: str):
    def hook(name: str) -> None:
        if name in steps:
            raise Crash(name)

    return hook


def request_cancellation(client, token) -> dict:
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 202, r.text
    return r.json()


def test_cancellation_starts_a_seven_day_cooling_off(client, ctx):
    token, _ = sign_up(client)
    before = utcnow()
    body = request_cancellation(client, token)
    assert body["status"] == "cooling_off"
    erase_after = datetime.fromisoformat(body["erase_after"])
    assert timedelta(days=7) <= erase_after - before < timedelta(days=7, minutes=1)
    # asking again is no harder and changes nothing (R05)
    again = request_cancellation(client, token)
    assert again["erase_after"] == body["erase_after"]
    assert count(ctx, "account_cancellations") == 1
    got = client.get("/api/v1/me/account-cancellation", headers=auth(token))
    assert got.status_code == 200 and got.json()["status"] == "cooling_off"
    # the account still works during the cooling-off
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_nothing_happens_before_the_period_ends_and_erasure_follows_it(client, ctx):
    subj = make_subject(client, ctx)
    request_cancellation(client, subj.token)
    clock.advance(timedelta(days=6, hours=23, minutes=59))
    assert erasure.erase_due(ctx) == 0
    assert client.get("/api/v1/me", headers=auth(subj.token)).json()["nickname"] == NICK
    clock.advance(timedelta(minutes=1))
    assert erasure.erase_due(ctx) == 1
    assert_erased(client, ctx, subj)
    assert erasure.erase_due(ctx) == 0  # done is done
    assert_phone_is_free(client, subj.me["id"])


def test_withdrawal_during_cooling_off_keeps_the_account(client, ctx):
    token, _ = sign_up(client)
    r = client.patch("/api/v1/me", json={"nickname": NICK}, headers=auth(token))
    assert r.status_code == 200
    request_cancellation(client, token)
    r = client.delete("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 204
    assert client.get("/api/v1/me/account-cancellation", headers=auth(token)).json()["status"] == "withdrawn"
    clock.advance(timedelta(days=8))
    assert erasure.erase_due(ctx) == 0
    assert client.get("/api/v1/me", headers=auth(token)).json()["nickname"] == NICK
    assert_error(
        client.delete("/api/v1/me/account-cancellation", headers=auth(token)), 404, "cancellation_not_found"
    )
    # a new request starts a new cooling-off (days later: the session proves the phone again)
    step_up(client, token)
    assert request_cancellation(client, token)["status"] == "cooling_off"
    assert count(ctx, "account_cancellations") == 2


def test_withdrawing_without_a_request_is_404(client):
    token, _ = sign_up(client)
    assert_error(
        client.delete("/api/v1/me/account-cancellation", headers=auth(token)), 404, "cancellation_not_found"
    )
    r = client.get("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 200 and r.json() is None


def test_a_withdrawn_request_is_never_erased(client, ctx):
    token, user = sign_up(client)
    request_cancellation(client, token)
    assert client.delete("/api/v1/me/account-cancellation", headers=auth(token)).status_code == 204
    with pytest.raises(AppError) as exc:
        erasure.erase(ctx, cancellation_id(ctx, user["id"]))
    assert exc.value.code == "cancellation_withdrawn"
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_erasure_cannot_be_withdrawn_once_started(client, ctx):
    subj = make_subject(client, ctx, other=False)
    request_cancellation(client, subj.token)
    with pytest.raises(Crash):
        erasure.erase(ctx, cancellation_id(ctx, subj.me["id"]), fail=crash_at("media:0"))
    # the user can no longer act, so the withdrawal can only come from a service call
    with ctx.db.session() as s, pytest.raises(AppError) as exc:
        erasure.withdraw_cancellation(s, subj.me["id"])
    assert exc.value.code == "cancellation_in_progress"


def test_the_step_list_matches_what_erasure_runs(client, ctx):
    subj = make_subject(client, ctx, other=False)
    request_cancellation(client, subj.token)
    seen: list[str] = []
    erasure.erase(ctx, cancellation_id(ctx, subj.me["id"]), fail=seen.append)
    assert seen == STEPS
    expected = {"sms_codes:0", "media:0", "auth_sessions:0", "guardian_consents:0", "users", "data_key"}
    assert expected <= set(seen)
    # the guardian's side of a guardian consent is kept (with a reason), but still a visited step
    assert "guardian_consents:1" in seen


def test_the_scanner_finds_a_live_user(client, ctx):
    """Prove the residue scanner works before trusting its empty answer after erasure."""
    make_subject(client, ctx, other=False)
    where = {h.where for h in scan(ctx, None, [NICK])}
    assert "db:users.nickname_enc" in where  # sealed, and opened with the subject's live key
    assert "db:users.region_enc" in {h.where for h in scan(ctx, None, [REGION])}
    assert "db:users.tags_enc" in {h.where for h in scan(ctx, None, [TAG])}
    # raw files are read too
    ctx.storage.put("scratch/note.txt", f"备注：{NICK}".encode())
    assert any(h.where.startswith("file:") for h in scan(ctx, None, [NICK]))
    ctx.storage.put("scratch/note16.txt", f"备注：{NICK}".encode("utf-16-le"))
    ctx.storage.delete("scratch/note.txt")
    assert any(h.where.endswith("note16.txt") for h in scan(ctx, None, [NICK]))
    ctx.storage.delete("scratch/note16.txt")
    if ctx.redis is not None:
        ctx.redis.set("hrk:test:residue", f"x{NICK}x".encode())
        assert "redis:hrk:test:residue" in {h.where for h in scan(ctx, None, [NICK])}
        ctx.redis.delete("hrk:test:residue")


def test_the_scanner_reads_json_escaped_text_in_raw_files(ctx):
    """SQLAlchemy's JSON type writes non-ASCII text as \\uXXXX escapes (users.tags on SQLite, and so in
    the raw database file and WAL). A scanner that only looks for UTF-8/UTF-16 bytes is blind there."""
    import json

    ctx.storage.put("scratch/row.json", json.dumps({"tags": [TAG]}).encode())
    try:
        assert any(h.where.endswith("row.json") for h in scan(ctx, None, [TAG]))
    finally:
        ctx.storage.delete("scratch/row.json")


def test_the_phone_number_is_never_stored_in_the_clear(client, ctx):
    """P17: a live account's number is only ciphertext and blind indexes, in every written form."""
    make_subject(client, ctx, other=False)
    assert scan(ctx, PHONE, []) == []


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_is_finished_by_running_again(client, ctx, step):
    subj = make_subject(client, ctx)
    request_cancellation(client, subj.token)
    cid = cancellation_id(ctx, subj.me["id"])
    with pytest.raises(Crash):
        erasure.erase(ctx, cid, fail=crash_at(step))
    # half-way, the account is already out of service
    assert client.get("/api/v1/me", headers=auth(subj.token)).status_code == 401
    with ctx.db.session() as s:
        assert s.scalar(select(User.status).where(User.id == subj.me["id"])) == "erasing"
    if STEPS.index(step) <= STEPS.index("users"):
        assert scan(ctx, None, [NICK]) != []  # not yet erased: the scanner still sees it
    erasure.erase(ctx, cid)
    assert_erased(client, ctx, subj)
    assert_phone_is_free(client, subj.me["id"])


def test_a_stuck_erasure_is_resumed_by_the_periodic_job(client, ctx):
    subj = make_subject(client, ctx)
    request_cancellation(client, subj.token)
    clock.advance(timedelta(days=7))
    with pytest.raises(Crash):
        erasure.erase(ctx, cancellation_id(ctx, subj.me["id"]), fail=crash_at("media:0"))
    assert erasure.erase_due(ctx) == 1
    assert_erased(client, ctx, subj)


@hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(crashes=st.lists(st.sampled_from(STEPS), min_size=1, max_size=4, unique=True))
def test_repeated_crashes_still_end_with_zero_residue(client, ctx, crashes):
    """Crash, rerun, crash at a later step, rerun... the end state is always the same."""
    clock.advance(timedelta(hours=1))  # fresh SMS windows for the reused phone numbers
    subj = make_subject(client, ctx, other=False)
    request_cancellation(client, subj.token)
    cid = cancellation_id(ctx, subj.me["id"])
    for step in sorted(crashes, key=STEPS.index):
        with pytest.raises(Crash):
            erasure.erase(ctx, cid, fail=crash_at(step))
    erasure.erase(ctx, cid)
    assert_erased(client, ctx, subj)
    assert scan(ctx, PHONE, [NICK, REGION, TAG]) == []


def test_erasing_twice_is_harmless(client, ctx):
    subj = make_subject(client, ctx)
    request_cancellation(client, subj.token)
    cid = cancellation_id(ctx, subj.me["id"])
    erasure.erase(ctx, cid)
    erasure.erase(ctx, cid)
    assert_erased(client, ctx, subj)


def test_proof_of_the_request_and_of_past_consent_is_kept_without_personal_data(client, ctx):
    """Erasure keeps ids and times (the cancellation, the consent ledger, the audit trail) and nothing
    that identifies the person once the tombstone is empty."""
    subj = make_subject(client, ctx, other=False)
    request_cancellation(client, subj.token)
    erasure.erase(ctx, cancellation_id(ctx, subj.me["id"]))
    uid = subj.me["id"]
    assert count(ctx, "consent_events", "user_id = :u", u=uid) >= 2
    assert count(ctx, "audit_events", "action = 'account.erased' AND subject_id = :u", u=uid) == 1
    with ctx.db.session() as s:
        u = s.get(User, uid)
        assert u is not None and u.status == "erased"
        assert u.phone_bidx is None and u.phone_enc is None and u.nickname_enc is None
        assert u.birthday_enc is None and u.region_enc is None and u.tags_enc is None
        assert u.gender_enc is None and u.avatar_media_id is None
    for table in (
        "auth_sessions",
        "devices",
        "media",
        "real_name_verifications",
        "privacy_cases",
        "data_exports",
        "permission_events",
        "data_keys",
    ):
        col = "subject_id" if table == "data_keys" else ("owner_id" if table == "media" else "user_id")
        assert count(ctx, table, f"{col} = :u", u=uid) == 0, table
    assert count(ctx, "privacy_case_events") == 0
    assert count(ctx, "sms_codes") == 0 and count(ctx, "dev_sms_outbox") == 0


def test_sign_in_is_refused_while_erasing_and_leaves_nothing_behind(client, ctx):
    subj = make_subject(client, ctx, other=False)
    request_cancellation(client, subj.token)
    cid = cancellation_id(ctx, subj.me["id"])
    with pytest.raises(Crash):
        erasure.erase(ctx, cid, fail=crash_at("media:0"))  # after the phone-index steps
    clock.advance(timedelta(minutes=2))
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    r = client.post("/api/v1/auth/sessions", json={"phone": PHONE, "code": latest_code(client, PHONE)})
    assert_error(r, 403, "account_cancelled")
    erasure.erase(ctx, cid)
    assert_erased(client, ctx, subj)
    # rows reached through the phone's blind index that appeared while erasing are the subject's too
    assert count(ctx, "sms_codes") == 0
    assert count(ctx, "dev_sms_outbox") == 0


def test_erase_due_cli(client, ctx, settings, monkeypatch):
    from privacy_support import run_cli

    subj = make_subject(client, ctx)
    request_cancellation(client, subj.token)
    r = run_cli(monkeypatch, settings, "privacy", "erase-due")
    assert r.exit_code == 0 and "已执行 0 个注销" in r.output, r.output
    clock.advance(timedelta(days=7))
    r = run_cli(monkeypatch, settings, "privacy", "erase-due")
    assert r.exit_code == 0 and "已执行 1 个注销" in r.output, r.output
    assert_erased(client, ctx, subj)
