"""Retention (P16, R10): when a category's period ends, its data is deleted or de-identified by the
retention job; data kept "while the account exists" is untouched."""

from __future__ import annotations

from datetime import timedelta

from privacy_support import DEVICE, OTHER_PHONE, count, export_and_download, rich_user, run_cli
from sqlalchemy import select, text

from conftest import auth, sign_up
from huirongke.kit.clock import clock, utcnow
from huirongke.privacy import audit, registry, retention
from huirongke.privacy.models import DataExport


def test_sms_codes_and_outbox_go_after_a_day(client, ctx):
    token, _ = sign_up(client)
    assert count(ctx, "sms_codes") == 1 and count(ctx, "dev_sms_outbox") == 1
    clock.advance(timedelta(hours=23))
    retention.apply(ctx)
    assert count(ctx, "sms_codes") == 1 and count(ctx, "dev_sms_outbox") == 1
    clock.advance(timedelta(hours=1, seconds=1))
    # a fresh code, sent now, must survive this run
    assert client.post("/api/v1/auth/sms-codes", json={"phone": OTHER_PHONE}).status_code == 202
    results = retention.apply(ctx)
    assert count(ctx, "sms_codes") == 1 and count(ctx, "dev_sms_outbox") == 1
    touched = {(r.table, r.action) for r in results}
    assert ("sms_codes", "delete") in touched and ("dev_sms_outbox", "delete") in touched
    # the account itself is untouched
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200


def test_login_ips_and_permission_records_go_after_180_days(client, ctx):
    _, user = rich_user(client)
    with ctx.db.session() as s:
        assert s.scalar(text("SELECT count(*) FROM auth_sessions WHERE login_ip IS NOT NULL")) == 1
    snapshot = {
        t: count(ctx, t)
        for t in (
            "users",
            "devices",
            "policy_agreements",
            "consent_events",
            "real_name_verifications",
            "media",
            "privacy_cases",
            "data_keys",
        )
    }
    clock.advance(timedelta(days=179))
    retention.apply(ctx)
    assert count(ctx, "auth_sessions", "login_ip IS NOT NULL") == 1
    assert count(ctx, "permission_events") == 1
    clock.advance(timedelta(days=1, seconds=1))
    retention.apply(ctx)
    assert count(ctx, "auth_sessions", "login_ip IS NOT NULL") == 0
    assert count(ctx, "permission_events") == 0
    # "while the account exists" data stays
    assert {t: count(ctx, t) for t in snapshot} == snapshot
    with ctx.db.session() as s:
        sealed = s.scalar(text("SELECT nickname_enc FROM users WHERE id = :u"), {"u": user["id"]})
        nick = ctx.keys.cipher(s, user["id"]).decrypt("users.nickname_enc", bytes(sealed))
    assert nick == "林小满"
    assert ctx.storage.exists(user["avatar_url"].removeprefix("/media/"))
    # the audit log records what retention did, by column name only
    with ctx.db.session() as s:
        fields = s.scalars(
            select(audit.AuditEvent.fields).where(audit.AuditEvent.action == "retention.applied")
        ).all()
    assert any("auth_sessions.login_ip" in f for f in fields)


def test_fresh_login_ips_are_not_touched(client, ctx):
    sign_up(client, **DEVICE)
    clock.advance(timedelta(days=181))
    retention.apply(ctx)
    assert count(ctx, "auth_sessions", "login_ip IS NOT NULL") == 0
    # a new sign-in today records today's IP, which the next run keeps
    clock.advance(timedelta(seconds=61))
    assert client.post("/api/v1/auth/sms-codes", json={"phone": "13800138000"}).status_code == 202
    from conftest import latest_code

    r = client.post(
        "/api/v1/auth/sessions", json={"phone": "13800138000", "code": latest_code(client, "13800138000")}
    )
    assert r.status_code == 201
    retention.apply(ctx)
    assert count(ctx, "auth_sessions", "login_ip IS NOT NULL") == 1
    assert count(ctx, "devices") == 1


def test_export_archives_go_after_their_day(client, ctx):
    token, _ = sign_up(client)
    status, _ = export_and_download(client, token)
    with ctx.db.session() as s:
        key = s.scalar(select(DataExport.storage_key).where(DataExport.id == status["id"]))
    assert key and ctx.storage.exists(key)
    clock.advance(timedelta(days=1, seconds=1))
    retention.apply(ctx)
    assert not ctx.storage.exists(key)
    assert count(ctx, "data_exports") == 0


def test_every_period_in_the_data_map_is_enforced(client, ctx):
    """Generic: after the longest period has passed, no row older than its column's period still holds
    that column's value. This is what the published list promises (P16, R01)."""
    rich_user(client)
    token, _ = sign_up(client, OTHER_PHONE, **DEVICE)
    export_and_download(client, token)
    periods = [
        (t, c, registry.retention_delta(c.cls.retention))
        for t in registry.tables()
        for c in t.columns
        if c.cls.personal and registry.retention_delta(c.cls.retention)
    ]
    longest = max(p for _, _, p in periods)
    clock.advance(longest + timedelta(days=1))
    retention.apply(ctx)
    now = utcnow()
    overdue = []
    with ctx.db.session() as s:
        for t, c, period in periods:
            assert t.clock_column
            q = select(t.table.c[c.name]).where(
                t.table.c[t.clock_column] < now - period, t.table.c[c.name].is_not(None)
            )
            if s.execute(q.limit(1)).first() is not None:
                overdue.append(f"{t.name}.{c.name} ({c.cls.retention})")
    assert overdue == [], f"kept past their published retention period: {overdue}"


def test_audit_log_is_pruned_after_its_period_and_still_verifies(client, ctx):
    sign_up(client)
    keep = ctx.settings.audit_retention_days
    assert keep >= 183  # R10: at least six months
    n = count(ctx, "audit_events")
    clock.advance(timedelta(days=keep - 1))
    retention.apply(ctx)
    assert count(ctx, "audit_events", "action <> 'retention.applied'") == n
    clock.advance(timedelta(days=2))
    results = retention.apply(ctx)
    assert ("audit_events", "delete") in {(r.table, r.action) for r in results}
    assert count(ctx, "audit_events", "action <> 'retention.applied'") == 0
    with ctx.db.session() as s:
        assert audit.verify(s).ok


def test_retention_cli(client, ctx, settings, monkeypatch):
    sign_up(client)
    clock.advance(timedelta(days=2))
    r = run_cli(monkeypatch, settings, "privacy", "retention")
    assert r.exit_code == 0, r.output
    assert "sms_codes" in r.output
    assert count(ctx, "sms_codes") == 0
