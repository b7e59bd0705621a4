"""A keyed, anchored audit chain (issue 7 part 4): whoever can write the database, but has neither the
master key nor the anchor file in `keys/`, cannot rewrite, cut or replace the chain unseen."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from privacy_support import rich_user, run_cli
from sqlalchemy import select, text

from conftest import sign_up
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit.clock import clock
from huirongke.privacy import audit
from huirongke.privacy.models import AuditEvent, AuditHead

Digest = Callable[[str, AuditEvent], str]


def _payload(e: AuditEvent) -> str:
    return json.dumps(
        [
            e.seq,
            e.at.isoformat(),
            e.actor_type,
            e.actor_id,
            e.subject_id,
            e.action,
            e.fields,
            e.purpose,
            e.request_id,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def plain_sha256(prev: str, e: AuditEvent) -> str:
    """The chain's digest before it was keyed: anyone can compute it."""
    return hashlib.sha256((prev + _payload(e)).encode()).hexdigest()


def hmac_under(key: bytes) -> Digest:
    return lambda prev, e: hmac.new(key, (prev + _payload(e)).encode(), hashlib.sha256).hexdigest()


def rewrite_from(ctx, seq: int, digest: Digest, **change: object) -> None:
    """The forgery: change event `seq`, then recompute its hash and every later one, and the head."""
    with ctx.db.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)))
        prev = events[0].prev_hash
        for k, v in change.items():
            setattr(events[0], k, v)
        for e in events:
            e.prev_hash = prev
            e.hash = prev = digest(prev, e)
        head = s.get(AuditHead, 1)
        assert head is not None
        head.hash = prev


def verdict(ctx) -> audit.VerifyResult:
    with ctx.db.session() as s:
        return audit.verify(s)


def last_seq(ctx) -> int:
    with ctx.db.session() as s:
        return int(s.scalar(text("SELECT max(seq) FROM audit_events")))


def anchor_file(settings: Settings) -> Path:
    return settings.data_dir / "keys" / audit.ANCHOR_FILE


@pytest.fixture
def chain(client, ctx) -> int:
    """A user with a few dozen audit events; returns the last sequence number."""
    rich_user(client)
    assert verdict(ctx).ok
    return last_seq(ctx)


def test_the_recomputed_plain_sha256_chain_of_the_old_attack_is_rejected(ctx, chain, settings, monkeypatch):
    # The experiment of issue 7: hide a registration by rewriting it and every later hash.
    rewrite_from(ctx, 1, plain_sha256, action="nothing.happened")
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, 1, "事件内容被篡改")
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit")
    assert r.exit_code == 1, r.output
    assert "审计日志被篡改：第 1 条事件，事件内容被篡改" in r.output


def test_a_chain_recomputed_under_another_key_is_rejected(ctx, chain):
    rewrite_from(ctx, chain // 2, hmac_under(b"k" * 32), subject_id="someone-else")
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, chain // 2, "事件内容被篡改")


def test_a_tail_rewritten_even_with_the_key_disagrees_with_the_anchor(ctx, chain):
    """Someone who stole the key but cannot write `keys/`: the anchored heads give the rewrite away."""
    rewrite_from(ctx, chain, hmac_under(ctx.ring.audit_key()), action="nothing.happened")
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, chain, "与链外锚点不符（事件被改写）")


@pytest.mark.parametrize("n", [1, 3])
def test_deleting_the_tail_and_fixing_the_head_is_caught_by_the_anchor(ctx, chain, settings, monkeypatch, n):
    with ctx.db.session() as s:
        s.execute(text("DELETE FROM audit_events WHERE seq > :q"), {"q": chain - n})
        new_end = s.get(AuditEvent, chain - n)
        assert new_end is not None
        s.execute(
            text("UPDATE audit_head SET seq = :q, hash = :h WHERE id = 1"),
            {"q": chain - n, "h": new_end.hash},
        )
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq) == (False, chain - n + 1)
    assert bad.reason.startswith(f"链外锚点记录到第 {chain} 条，数据库只到第 {chain - n} 条")
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit")
    assert r.exit_code == 1, r.output
    assert "末尾事件被删除" in r.output


def test_a_cut_tail_regrown_by_new_events_is_caught_by_the_anchor(client, ctx, chain):
    """Cutting the tail, resetting the head, then letting the service write new events past the old
    end: the head is consistent again, but the anchored hashes of the old events do not match."""
    with ctx.db.session() as s:
        s.execute(text("DELETE FROM audit_events WHERE seq > :q"), {"q": chain - 2})
        new_end = s.get(AuditEvent, chain - 2)
        assert new_end is not None
        s.execute(
            text("UPDATE audit_head SET seq = :q, hash = :h WHERE id = 1"),
            {"q": chain - 2, "h": new_end.hash},
        )
    for i in range(4):
        with ctx.db.session() as s:
            audit.record(s, f"test.after{i}", actor_type="system", actor_id="t", subject_id=None)
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (
        False,
        None,
        f"链外锚点中第 {chain - 1} 条有两个不同的链头（审计链被改写过）",
    )


def test_a_deleted_anchor_file_fails_verification(ctx, chain, settings):
    anchor_file(settings).unlink()
    bad = verdict(ctx)
    assert (bad.ok, bad.reason) == (False, "链外锚点文件缺失（audit-anchor.log）")


def test_every_commit_that_advances_the_chain_anchors_its_head(client, ctx, settings):
    sign_up(client)
    before = anchor_file(settings).read_text().splitlines()
    with ctx.db.session() as s:
        audit.record(s, "test.one", actor_type="system", actor_id="t", subject_id=None)
        audit.record(s, "test.two", actor_type="system", actor_id="t", subject_id=None)
    with ctx.db.session() as s:
        s.execute(text("SELECT 1"))  # a commit with no audit event anchors nothing
    with ctx.db.session() as s:
        head = s.get(AuditHead, 1)
        assert head is not None
    assert anchor_file(settings).read_text().splitlines() == [*before, f"{head.seq} {head.hash}"]


def test_a_rolled_back_transaction_anchors_nothing(client, ctx, settings):
    sign_up(client)
    before = anchor_file(settings).read_text()
    with pytest.raises(RuntimeError), ctx.db.session() as s:
        audit.record(s, "test.lost", actor_type="system", actor_id="t", subject_id=None)
        raise RuntimeError("the request failed")
    assert anchor_file(settings).read_text() == before
    assert verdict(ctx).ok


# `fields` ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "replacement"),
    [
        # Before: verification hashed `list(fields or [])`, so these passed unseen.
        ([], "null"),
        (["users.nickname"], '{"users.nickname": "林小满"}'),  # a value smuggled into the log
        (["users.nickname", "users.region"], '["users.nickname"]'),
        (["users.nickname", "users.region"], '["users.region","users.nickname"]'),
    ],
)
def test_a_changed_fields_list_is_detected(client, ctx, stored, replacement):
    sign_up(client)
    with ctx.db.session() as s:
        audit.record(s, "test.fields", actor_type="system", actor_id="t", subject_id=None, fields=stored)
    seq = last_seq(ctx)
    with ctx.db.session() as s:
        assert s.get(AuditEvent, seq).fields == stored
        s.execute(text("UPDATE audit_events SET fields = :v WHERE seq = :q"), {"v": replacement, "q": seq})
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, seq, "事件内容被篡改")


# The key belongs to the database's context ---------------------------------------------------------


def test_each_context_chains_under_its_own_key(client, ctx, settings, tmp_path):
    """Two contexts in one process (the tests build many): each database's sessions carry the key of
    the data dir they were built from, so a context built later does not re-key an earlier one."""
    sign_up(client)
    other = build_context(settings.model_copy(update={"data_dir": tmp_path / "other"}))
    try:
        assert other.ring.audit_key() != ctx.ring.audit_key()
        assert verdict(ctx).ok
        with other.db.session() as s:
            bad = audit.verify(s)
        assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, 1, "事件内容被篡改")
    finally:
        other.db.dispose()


# Restores ------------------------------------------------------------------------------------------


def _restore_to(ctx, seq: int) -> None:
    """What restoring a database backup taken at event `seq` leaves: the chain up to `seq`."""
    with ctx.db.session() as s:
        s.execute(text("DELETE FROM audit_events WHERE seq > :q"), {"q": seq})
        end = s.get(AuditEvent, seq)
        assert end is not None
        s.execute(text("UPDATE audit_head SET seq = :q, hash = :h WHERE id = 1"), {"q": seq, "h": end.hash})


def test_a_declared_restore_verifies_and_stays_visible(client, ctx, chain, settings, monkeypatch):
    _restore_to(ctx, chain - 3)
    assert verdict(ctx).ok is False  # undeclared, a restore looks exactly like a cut tail
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit", "--record-restore")
    assert r.exit_code == 0, r.output
    assert f"审计链现止于第 {chain - 3} 条事件" in r.output
    sign_up(client, "13900139000")  # the service goes on writing past the restored head
    assert verdict(ctx).ok
    restored = [
        line for line in anchor_file(settings).read_text().splitlines() if line.startswith("restored ")
    ]
    assert [line.split(" ")[1] for line in restored] == [str(chain - 3)]


def test_a_restore_line_without_the_key_is_refused(ctx, chain, settings):
    _restore_to(ctx, chain - 3)
    with ctx.db.session() as s:
        head = s.get(AuditHead, 1)
        assert head is not None
        body = f"restored {head.seq} {head.hash} {datetime(2026, 1, 1).isoformat()}"
    with anchor_file(settings).open("a") as f:
        f.write(f"{body} {'0' * 64}\n")  # a forger without the key cannot MAC the line
    bad = verdict(ctx)
    assert (bad.ok, bad.reason) == (False, "链外锚点的恢复记录无效")


# Upgrading a log begun with plain SHA-256 ----------------------------------------------------------


def _legacy_log(client, ctx, settings) -> int:
    """A database from before the chain was keyed: every hash plain SHA-256 and no anchor; then the
    upgraded service writes keyed events on top of it. Returns the last legacy sequence number."""
    rich_user(client)
    legacy_end = last_seq(ctx)
    rewrite_from(ctx, 1, plain_sha256)
    anchor_file(settings).unlink()
    sign_up(client, "13900139000")  # after the upgrade: keyed events, anchored
    return legacy_end


def test_a_legacy_log_is_rekeyed_once_and_then_verifies(client, ctx, settings, monkeypatch):
    _legacy_log(client, ctx, settings)
    bad = verdict(ctx)
    assert (bad.ok, bad.first_bad_seq, bad.reason) == (False, 1, "事件内容被篡改")
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit", "--rekey-legacy")
    assert r.exit_code == 0, r.output
    assert f"已用密钥重新签名 {last_seq(ctx)} 条事件" in r.output
    assert "审计日志完整" in r.output
    assert anchor_file(settings).read_text().splitlines()[-1].startswith(f"rekeyed {last_seq(ctx)} ")
    sign_up(client, "13700137000")  # the service goes on chaining onto the re-keyed head
    assert verdict(ctx).ok
    # from now on, the old attack is caught like on any keyed log
    rewrite_from(ctx, 2, plain_sha256, action="nothing.happened")
    assert (verdict(ctx).ok, verdict(ctx).first_bad_seq) == (False, 2)


def test_a_broken_legacy_log_is_not_rekeyed(client, ctx, settings, monkeypatch):
    legacy_end = _legacy_log(client, ctx, settings)
    with ctx.db.session() as s:
        s.execute(text("UPDATE audit_events SET action = 'nothing.happened' WHERE seq = 3"))
    with ctx.db.session() as s:
        hashes = list(s.execute(text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")).all())
    r = run_cli(monkeypatch, settings, "privacy", "verify-audit", "--rekey-legacy")
    assert r.exit_code == 1, r.output
    assert "审计日志被篡改，未重新签名：第 3 条事件，事件内容被篡改" in r.output
    with ctx.db.session() as s:
        assert (
            list(s.execute(text("SELECT seq, prev_hash, hash FROM audit_events ORDER BY seq")).all())
            == hashes
        )
    assert legacy_end > 3  # the tampered event was a legacy one


def test_pruned_events_leave_their_anchors_behind(client, ctx, chain):
    """Retention prunes the start of the chain; the anchored heads of pruned events are not compared."""
    clock.advance(timedelta(days=400))
    sign_up(client, "13900139000")
    with ctx.db.session() as s:
        assert audit.prune(s, keep_days=183) == chain
    assert verdict(ctx).ok


def test_a_released_savepoint_anchors_nothing_before_the_commit(client, ctx, settings):
    sign_up(client)
    with ctx.db.session() as s:
        before = anchor_file(settings).read_text()
        with s.begin_nested():
            audit.record(s, "test.inner", actor_type="system", actor_id="t", subject_id=None)
        assert anchor_file(settings).read_text() == before
    assert verdict(ctx).ok
    assert anchor_file(settings).read_text().splitlines()[-1].startswith(f"{last_seq(ctx)} ")
