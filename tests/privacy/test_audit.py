"""The audit trail (P10, P19, R10): every change is recorded with field names, never values; the
hash chain makes any edit, removal or truncation visible to `huirongke privacy verify-audit`."""

from __future__ import annotations

import threading

import pytest
from privacy_support import (
    ID_NUMBER,
    PHONE,
    REAL_NAME,
    count,
    export_and_download,
    rich_user,
    rows,
    run_cli,
)
from sqlalchemy import select, text

from conftest import auth, sign_up
from huirongke.privacy import audit
from huirongke.privacy.residue import phone_forms

NICK, REGION, TAG = "林小满", "思明区莲前东路", "金牌经纪X9"


def events(ctx, action: str) -> list[audit.AuditEvent]:
    with ctx.db.session() as s:
        return list(s.scalars(select(audit.AuditEvent).where(audit.AuditEvent.action == action)))


def all_audit_text(ctx) -> str:
    return "\n".join(
        " | ".join(str(v) for v in r) for r in rows(ctx, "SELECT * FROM audit_events ORDER BY seq")
    )


def test_changes_are_recorded_with_field_names_never_values(client, ctx):
    token, _ = rich_user(client, nickname=NICK, region=REGION, tag=TAG)
    r = client.patch("/api/v1/me/privacy-settings", json={"show_phone": True}, headers=auth(token))
    assert r.status_code == 200
    export_and_download(client, token)

    dump = all_audit_text(ctx)
    for secret in [*phone_forms(PHONE), NICK, REGION, TAG, ID_NUMBER, REAL_NAME, "1990-05-06"]:
        assert secret not in dump, f"audit log holds a value: {secret}"

    actions = [r[0] for r in rows(ctx, "SELECT action FROM audit_events ORDER BY seq")]
    for expected in [
        "account.registered",
        "profile.updated",
        "real_name.submitted",
        "consent.granted",
        "privacy_settings.updated",
        "case.contact.opened",
        "export.requested",
        "export.ready",
        "export.downloaded",
    ]:
        assert expected in actions, expected
    fields = [f for e in events(ctx, "profile.updated") for f in e.fields]
    assert {"users.nickname_enc", "users.region_enc", "users.tags_enc"} <= set(fields)


def test_an_untouched_chain_verifies(client, ctx, settings, monkeypatch):
    rich_user(client)
    with ctx.db.session() as s:
        result = audit.verify(s)
    assert result.ok and result.checked == count(ctx, "audit_events") > 5
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit")
    assert r.exit_code == 0, r.output
    assert "审计日志完整" in r.output


def test_an_empty_log_verifies(ctx, settings, monkeypatch):
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit")
    assert r.exit_code == 0, r.output


def _tamper(ctx, how: str) -> None:
    with ctx.db.session() as s:
        last = int(s.scalar(text("SELECT max(seq) FROM audit_events")))
        middle = last // 2
        if how == "change_action":
            s.execute(
                text("UPDATE audit_events SET action = 'nothing.happened' WHERE seq = :q"), {"q": middle}
            )
        elif how == "change_subject":
            s.execute(
                text("UPDATE audit_events SET subject_id = 'someone-else' WHERE seq = :q"), {"q": middle}
            )
        elif how == "change_time":
            s.execute(
                text(
                    "UPDATE audit_events SET at = (SELECT at FROM audit_events WHERE seq = 1) WHERE seq = :q"
                ),
                {"q": middle},
            )
        elif how == "delete_middle":
            s.execute(text("DELETE FROM audit_events WHERE seq = :q"), {"q": middle})
        elif how == "delete_last":
            s.execute(text("DELETE FROM audit_events WHERE seq = :q"), {"q": last})
        elif how == "delete_all":
            s.execute(text("DELETE FROM audit_events"))
        elif how == "delete_first_rows":
            # Fresh events, far younger than the retention period: this is hiding evidence, not pruning.
            s.execute(text("DELETE FROM audit_events WHERE seq <= :q"), {"q": middle})
        elif how == "rewrite_with_a_fresh_hash":
            # A forger who recomputes the edited row's own hash (even with the key) still breaks the
            # next row's link.
            e = s.get(audit.AuditEvent, middle)
            assert e is not None
            e.action = "nothing.happened"
            e.hash = audit._digest(
                ctx.ring.audit_key(),
                e.prev_hash,
                e.seq,
                e.at,
                e.actor_type,
                e.actor_id,
                e.subject_id,
                e.action,
                list(e.fields or []),
                e.purpose,
                e.request_id,
            )
        elif how == "rewrite_last_with_a_fresh_hash":
            # Even with the key: the head row still holds the old hash.
            e = s.get(audit.AuditEvent, last)
            assert e is not None
            e.action = "nothing.happened"
            e.hash = audit._digest(
                ctx.ring.audit_key(),
                e.prev_hash,
                e.seq,
                e.at,
                e.actor_type,
                e.actor_id,
                e.subject_id,
                e.action,
                list(e.fields or []),
                e.purpose,
                e.request_id,
            )
        else:
            raise AssertionError(how)


TAMPERING = [
    "change_action",
    "change_subject",
    "change_time",
    "delete_middle",
    "delete_last",
    "delete_all",
    "delete_first_rows",
    "rewrite_with_a_fresh_hash",
    "rewrite_last_with_a_fresh_hash",
]


@pytest.mark.parametrize("how", TAMPERING)
def test_tampering_is_detected(client, ctx, settings, monkeypatch, how):
    rich_user(client)
    assert run_cli(monkeypatch, settings, "privacy", "verify-audit").exit_code == 0
    _tamper(ctx, how)
    with ctx.db.session() as s:
        assert audit.verify(s).ok is False
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit")
    assert r.exit_code == 1, r.output
    assert "审计日志被篡改" in r.output


def test_verification_pages_through_long_chains(client, ctx):
    sign_up(client)
    with ctx.db.session() as s:
        for i in range(25):
            audit.record(s, f"test.event{i}", actor_type="system", actor_id="t", subject_id=None)
    with ctx.db.session() as s:
        assert audit.verify(s, batch=7).ok
    with ctx.db.session() as s:
        s.execute(text("UPDATE audit_events SET action = 'x' WHERE seq = 15"))
    with ctx.db.session() as s:
        bad = audit.verify(s, batch=7)
    assert not bad.ok and bad.first_bad_seq == 15


def test_concurrent_writers_keep_one_unbroken_chain(client, ctx):
    sign_up(client)  # the chain head exists
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with ctx.db.session() as s:
                    audit.record(s, f"test.w{n}.{i}", actor_type="system", actor_id=f"w{n}", subject_id=None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = [r[0] for r in rows(ctx, "SELECT seq FROM audit_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    with ctx.db.session() as s:
        assert audit.verify(s).ok


def test_staff_reads_are_audited(client, ctx):
    """P19: reading a user's words in a case is itself logged, with the staff id."""
    from huirongke.privacy import cases
    from huirongke.privacy.models import PrivacyCase

    rich_user(client)
    with ctx.db.session() as s:
        case = s.scalars(select(PrivacyCase)).one()
        assert "资料" in cases.read_description(ctx, s, case, "staff-42")
    got = events(ctx, "case.description.read")
    assert [(e.actor_type, e.actor_id, e.subject_id) for e in got] == [("staff", "staff-42", case.user_id)]
    assert got[0].fields == ["privacy_cases.description_enc"]


def test_concurrent_writers_on_an_empty_log(ctx):
    """With no chain-head row (the test harness empties every table; a database migrated before 0002
    seeded the head), `_chain_pending` creates the head itself. Concurrent first writers must not fail:
    the creation has to tolerate a writer that got there first."""
    assert count(ctx, "audit_head") == 0
    barrier = threading.Barrier(4)
    errors: list[str] = []

    def writer(n: int) -> None:
        barrier.wait()
        try:
            with ctx.db.session() as s:
                audit.record(s, f"test.first{n}", actor_type="system", actor_id=f"w{n}", subject_id=None)
        except Exception as exc:
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(ctx, "audit_events") == 4
    with ctx.db.session() as s:
        assert audit.verify(s).ok
