"""Backups that forget (issue 7 part 5): a backup restored after an erasure brings nobody back.

Every test drives the product the way an operator does: a user is made through the API, a backup is
taken with `privacy.backup.create` (or the CLI), the user is erased through the API, and the backup is
restored into an empty data dir (and, on PostgreSQL, an empty database) with the keys dir as it is now.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from erasure_support import NEEDLES, assert_erased, assert_phone_is_free, make_subject
from fastapi.testclient import TestClient
from privacy_support import OTHER_PHONE, PHONE
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from conftest import PG_ADMIN_URL, auth, sign_up
from huirongke.app import create_app
from huirongke.config import Settings, get_settings
from huirongke.context import AppContext, build_context
from huirongke.kit.clock import clock
from huirongke.privacy import audit, backup, backup_keys, ledger, replay
from huirongke.privacy.backup import BackupError
from huirongke.privacy.models import AccountCancellation
from huirongke.privacy.residue import _needles, phone_forms, scan_file


@pytest.fixture
def settings(settings: Settings, backend: str) -> Settings:
    if backend == "postgres" and (shutil.which("pg_dump") is None or shutil.which("pg_restore") is None):
        pytest.skip("pg_dump/pg_restore are not installed: PostgreSQL backups need the client tools")
    settings.cancellation_cooling_off_days = 0  # a cancellation erases at once
    return settings


@pytest.fixture
def target(tmp_path: Path, backend: str) -> Iterator[Settings]:
    """Settings naming an empty data dir and an empty database, to restore into."""
    data_dir = tmp_path / "restored"
    if backend == "sqlite":
        yield Settings(env="dev", data_dir=data_dir, log_level="WARNING")
        return
    name = f"hrk_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield Settings(env="dev", data_dir=data_dir, database_url=url, log_level="WARNING")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def erase_through_the_api(client: TestClient, ctx: AppContext, token: str, user_id: str) -> None:
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 202, r.text
    with ctx.db.session() as s:
        status = s.scalar(select(AccountCancellation.status).where(AccountCancellation.user_id == user_id))
    assert status == "erased"


def assert_gone(client: TestClient, ctx: AppContext, subj: Any) -> None:
    """`assert_erased` on a restored service, with the bystander checked through the API only (their
    profile may be stored encrypted, so a byte scan proves nothing about them)."""
    assert_erased(client, ctx, dataclasses.replace(subj, other_token=""))
    r = client.get(f"/api/v1/users/{subj.me['id']}", headers=auth(subj.other_token))
    assert r.status_code == 200, r.text
    assert r.json()["nickname"] == "已注销用户" and r.json()["avatar_url"] is None and r.json()["tags"] == []
    me = client.get("/api/v1/me", headers=auth(subj.other_token))
    assert me.status_code == 200 and me.json()["nickname"] == "旁观者老周", "the bystander came back whole"


def stored_state(settings: Settings, user_id: str) -> tuple[str | None, bool]:
    """Straight from the database, before any service opens it: the user's status, and whether the
    data key is there."""
    engine = create_engine(settings.resolved_database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            status = conn.scalar(text("SELECT status FROM users WHERE id = :id"), {"id": user_id})
            key = conn.scalar(text("SELECT count(*) FROM data_keys WHERE subject_id = :id"), {"id": user_id})
    finally:
        engine.dispose()
    return status, bool(key)


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def byte_hits(root: Path, strings: list[str]) -> list[str]:
    """Every file under `root`, every byte: where any form of any string occurs."""
    needles = _needles(strings)
    return [f"{p.relative_to(root)}#{i}" for p in every_file(root) for i in sorted(scan_file(p, needles))]


@pytest.fixture
def opened() -> Iterator[list[AppContext]]:
    """Contexts opened on restored data dirs, closed after the test."""
    contexts: list[AppContext] = []
    yield contexts
    for c in contexts:
        c.db.dispose()


def open_restored(target: Settings, opened: list[AppContext]) -> tuple[AppContext, TestClient]:
    ctx = build_context(target, immediate_jobs=True)
    opened.append(ctx)
    return ctx, TestClient(create_app(ctx=ctx), base_url="http://testserver")


def fail_at(step: str) -> Any:
    def hook(name: str) -> None:
        if name == step:
            raise RuntimeError(f"crash at {name}")

    return hook


# --- the promise -----------------------------------------------------------------------------------


def test_a_backup_taken_before_an_erasure_restores_without_the_erased_user(
    client, ctx, tmp_path, target, opened
):
    subj = make_subject(client, ctx)
    user_id = subj.me["id"]
    taken = backup.create(ctx.settings, tmp_path / "backups" / "b1")
    assert taken["ledger_position"] == 0
    erase_through_the_api(client, ctx, subj.token, user_id)
    assert [e.user_id for e in ledger.entries(ctx.settings.data_dir)] == [user_id]
    # The backup's own copy of the user's data key went with the erasure: the backup holds none,
    # and its key file in keys/ keeps the bystander's key only.
    kept = backup_keys.read(ctx.settings.data_dir / "keys", taken["backup_id"])
    assert kept is not None and [k[0] for k in kept] == [subj.other["id"]]

    result = backup.restore(target, tmp_path / "backups" / "b1", ctx.settings.data_dir / "keys")
    assert result.replayed == 1
    assert stored_state(target, user_id) == ("erased", False), "replayed by the restore itself"

    # Every byte of every restored file (database and its WAL, media, keys, job store).
    strings = phone_forms(PHONE) + NEEDLES
    assert every_file(target.data_dir), "the restore wrote files"
    assert byte_hits(target.data_dir, strings) == []
    if target.is_sqlite:
        assert Path(target.resolved_database_url.removeprefix("sqlite:///")).parent == target.data_dir
    restored, restored_client = open_restored(target, opened)
    with restored_client:
        # The token is dead, tables/files hold nothing, media and archive gone, key shredded,
        # others see a tombstone, and the bystander came back whole.
        assert_gone(restored_client, restored, subj)
        # Signing in with the phone makes a brand-new, empty account.
        assert_phone_is_free(restored_client, user_id)
    with restored.db.session() as s:  # the restore was declared to the audit anchor before the replay
        assert audit.verify(s).ok


def test_a_backup_taken_after_the_erasure_restores_cleanly(
    client, ctx, tmp_path, target, opened, monkeypatch
):
    subj = make_subject(client, ctx)
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    out = cli(monkeypatch, ctx.settings, "backup", "create", str(tmp_path / "b2"))
    assert out.exit_code == 0, out.output
    assert "1/4" in out.output and "4/4" in out.output and "备份完成" in out.output
    out = cli(
        monkeypatch,
        target,
        "backup",
        "restore",
        str(tmp_path / "b2"),
        "--keys",
        str(ctx.settings.data_dir / "keys"),
    )
    assert out.exit_code == 0, out.output
    assert "重放 0 个注销" in out.output
    assert byte_hits(target.data_dir, phone_forms(PHONE) + NEEDLES) == []
    restored, restored_client = open_restored(target, opened)
    with restored_client:
        assert_gone(restored_client, restored, subj)


def test_a_restore_by_hand_is_replayed_before_the_service_answers(client, ctx, tmp_path, target, opened):
    """Every step of a restore done by hand except the replay: the service replays the ledger at start."""
    subj = make_subject(client, ctx)
    taken = backup.create(ctx.settings, tmp_path / "b")
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    shutil.copytree(ctx.settings.data_dir / "keys", target.data_dir / "keys")
    shutil.copytree(tmp_path / "b" / "media", target.media_dir)
    kind = "sqlite" if target.is_sqlite else "postgresql"
    backup._load_database(
        kind,
        tmp_path / "b" / (backup.SQLITE_FILE if target.is_sqlite else backup.PG_FILE),
        target.resolved_database_url,
    )
    backup._reattach(target, backup_keys.read(target.data_dir / "keys", taken["backup_id"]) or [])
    assert stored_state(target, subj.me["id"]) == ("active", False), "the copy brought the user back"
    restored, restored_client = open_restored(target, opened)
    with restored_client:  # the app's start replays the ledger before the first request
        assert_gone(restored_client, restored, subj)


def test_erasures_made_before_the_ledger_existed_are_recorded_at_start(client, ctx, tmp_path, target):
    subj = make_subject(client, ctx)
    backup.create(ctx.settings, tmp_path / "b")
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    ledger.ledger_path(ctx.settings.data_dir).unlink()  # erased by a version without the ledger
    replay.on_startup(ctx)  # what the app runs before it answers
    assert [e.user_id for e in ledger.entries(ctx.settings.data_dir)] == [subj.me["id"]]
    result = backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert result.replayed == 1
    assert stored_state(target, subj.me["id"]) == ("erased", False)


def test_a_replay_that_crashed_is_finished_by_starting_the_service(client, ctx, tmp_path, target, opened):
    subj = make_subject(client, ctx)
    backup.create(ctx.settings, tmp_path / "b")
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    keys = ctx.settings.data_dir / "keys"
    with pytest.raises(RuntimeError, match="crash at media:0"):
        backup.restore(target, tmp_path / "b", keys, fail=fail_at("media:0"))
    with pytest.raises(BackupError, match="backup replay"):
        backup.restore(target, tmp_path / "b", keys)
    assert stored_state(target, subj.me["id"]) == ("erasing", False)
    restored, restored_client = open_restored(target, opened)
    with restored_client:
        assert_gone(restored_client, restored, subj)


def test_a_replay_that_crashed_is_finished_by_backup_replay(
    client, ctx, tmp_path, target, opened, monkeypatch
):
    subj = make_subject(client, ctx)
    backup.create(ctx.settings, tmp_path / "b")
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    with pytest.raises(RuntimeError, match="crash at users"):
        backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys", fail=fail_at("users"))
    assert (target.data_dir / backup.UNFINISHED).exists()
    out = cli(monkeypatch, target, "backup", "replay")
    assert out.exit_code == 0, out.output
    assert "重放 1 个注销" in out.output
    assert not (target.data_dir / backup.UNFINISHED).exists()
    assert byte_hits(target.data_dir, phone_forms(PHONE) + NEEDLES) == []
    restored, restored_client = open_restored(target, opened)
    with restored_client:
        assert_gone(restored_client, restored, subj)


# --- what a backup holds ----------------------------------------------------------------------------


def test_a_backup_holds_no_keys_and_only_private_files(client, ctx, tmp_path):
    subj = make_subject(client, ctx, other=False)
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    token, other = sign_up(client, OTHER_PHONE)  # someone with an avatar, still here
    from privacy_support import upload_avatar

    media = upload_avatar(client, token)
    dest = tmp_path / "b"
    manifest = backup.create(ctx.settings, dest)
    listed = {f["path"] for f in manifest["files"]}
    db_file = backup.SQLITE_FILE if ctx.settings.is_sqlite else backup.PG_FILE
    assert listed == {db_file, "media/" + media["url"].removeprefix("/media/")}
    assert manifest["database"] == ("sqlite" if ctx.settings.is_sqlite else "postgresql")
    assert manifest["ledger_position"] == 1
    assert manifest["schema_revision"]
    if ctx.settings.is_sqlite:  # the database copy holds no data key: they are in keys/backup-keys/
        with sqlite3.connect(dest / backup.SQLITE_FILE) as conn:
            assert conn.execute("SELECT count(*) FROM data_keys").fetchone() == (0,)
    kept = backup_keys.read(ctx.settings.data_dir / "keys", manifest["backup_id"])
    assert kept is not None and [k[0] for k in kept] == [other["id"]]
    on_disk = {p.relative_to(dest).as_posix() for p in every_file(dest)}
    assert on_disk == listed | {backup.MANIFEST}
    assert not any("master.key" in p or "ledger" in p or p.startswith("keys") for p in on_disk)
    for p in [dest, *dest.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_media_are_sealed_under_their_owners_keys_and_only_owned_files_come_back(
    client, ctx, tmp_path, target
):
    from privacy_support import upload_avatar

    token, user = sign_up(client)
    kept = upload_avatar(client, token)["url"].removeprefix("/media/")
    original = ctx.storage.get(kept)
    ctx.storage.put("avatars/zz/orphan.png", b"an upload without a row")
    manifest = backup.create(ctx.settings, tmp_path / "b")
    media = [f for f in manifest["files"] if f["path"].startswith("media/")]
    assert media == [{**media[0], "path": f"media/{kept}", "owner": user["id"]}]
    sealed = (tmp_path / "b" / "media" / kept).read_bytes()
    assert original not in sealed and not sealed.startswith(b"\x89PNG")
    result = backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert (target.media_dir / kept).read_bytes() == original
    assert not (target.media_dir / "avatars/zz/orphan.png").exists()
    assert result.orphans_removed == 0


def test_an_interrupted_restore_deletes_media_no_restored_row_names(client, ctx, tmp_path, target):
    """Whatever lies in the media folder of a restore that is being finished, and no restored row
    names (an upload after the snapshot), goes: no erasure could ever reach it."""
    sign_up(client)
    backup.create(ctx.settings, tmp_path / "b")
    backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    (target.data_dir / backup.UNFINISHED).write_text("interrupted")
    stray = target.media_dir / "avatars" / "zz" / "stray.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"an upload without a row")
    assert backup.finish(target) == (0, 1)
    assert not stray.exists()


def test_the_ledger_holds_no_personal_data_and_is_written_before_the_first_step(client, ctx):
    subj = make_subject(client, ctx, other=False)
    from erasure_support import step_names

    from huirongke.accounts.models import User
    from huirongke.privacy.erasure import erase, request_cancellation

    ctx.settings.cancellation_cooling_off_days = 7  # request only; erase below, crashing at once
    with ctx.db.session() as s:
        cid = request_cancellation(ctx, s, s.get(User, subj.me["id"])).id
    with pytest.raises(RuntimeError):
        erase(ctx, cid, fail=fail_at(step_names()[0]))
    entries = ledger.entries(ctx.settings.data_dir)
    assert [(e.user_id, e.cancellation_id) for e in entries] == [(subj.me["id"], cid)]
    erase(ctx, cid)  # the resumed erasure does not record the subject twice
    path = ledger.ledger_path(ctx.settings.data_dir)
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert set(json.loads(lines[0])) == {"v", "user_id", "cancellation_id", "at"}
    assert byte_hits(path.parent, phone_forms(PHONE) + NEEDLES) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_ledger_line_stops_the_service_instead_of_being_skipped(client, ctx):
    subj = make_subject(client, ctx, other=False)
    erase_through_the_api(client, ctx, subj.token, subj.me["id"])
    path = ledger.ledger_path(ctx.settings.data_dir)
    with path.open("a") as f:
        f.write("{not json\n")
    with pytest.raises(ledger.LedgerDamaged, match="line 2"):
        replay.pending(ctx)
    with pytest.raises(ledger.LedgerDamaged), TestClient(create_app(ctx=ctx)):
        pass


# --- refusals ----------------------------------------------------------------------------------------


def test_restore_refuses_a_data_dir_that_is_not_empty(client, ctx, tmp_path, target):
    sign_up(client)
    backup.create(ctx.settings, tmp_path / "b")
    target.data_dir.mkdir(parents=True)
    (target.data_dir / "notes.txt").write_text("operator's file")
    with pytest.raises(BackupError, match="只能恢复到空的数据目录"):
        backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert [p.name for p in target.data_dir.iterdir()] == ["notes.txt"]


def test_restore_refuses_a_database_that_is_not_empty(client, ctx, tmp_path, target):
    sign_up(client)
    backup.create(ctx.settings, tmp_path / "b")
    used = target.model_copy(update={"database_url": ctx.settings.resolved_database_url})
    with pytest.raises(BackupError, match="只能恢复到空的数据库"):
        backup.restore(used, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert not used.data_dir.exists()


def test_a_changed_backup_file_fails_its_checksum_and_nothing_is_restored(client, ctx, tmp_path, target):
    token, _ = sign_up(client)
    from privacy_support import upload_avatar

    media = upload_avatar(client, token)
    backup.create(ctx.settings, tmp_path / "b")
    changed = tmp_path / "b" / "media" / media["url"].removeprefix("/media/")
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"备份文件校验失败：media/.*已被改动或损坏"):
        backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert not target.data_dir.exists()


def test_a_changed_manifest_fails_its_seal(client, ctx, tmp_path, target):
    sign_up(client)
    backup.create(ctx.settings, tmp_path / "b")
    path = tmp_path / "b" / backup.MANIFEST
    doc = json.loads(path.read_text())
    doc["ledger_position"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="清单被改动过"):
        backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert not target.data_dir.exists()


def test_restore_refuses_a_backup_whose_key_file_is_gone(client, ctx, tmp_path, target):
    sign_up(client)
    taken = backup.create(ctx.settings, tmp_path / "b")
    backup_keys.path_for(ctx.settings.data_dir / "keys", taken["backup_id"]).unlink()
    with pytest.raises(BackupError, match="没有这份备份的数据密钥文件"):
        backup.restore(target, tmp_path / "b", ctx.settings.data_dir / "keys")
    assert not target.data_dir.exists()


def test_create_refuses_a_folder_that_is_not_empty(client, ctx, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(BackupError, match="备份目录必须为空"):
        backup.create(ctx.settings, tmp_path / "b")


# --- pruning -----------------------------------------------------------------------------------------


def test_prune_deletes_backups_older_than_the_setting(client, ctx, tmp_path, monkeypatch):
    from datetime import timedelta

    sign_up(client)
    root = tmp_path / "backups"
    backup.create(ctx.settings, root / "old")
    (root / "unfinished-old").mkdir()
    (root / "unfinished-old" / backup.UNFINISHED).write_text(clock_now().isoformat())
    (root / "not-a-backup").mkdir()
    clock.advance(timedelta(days=8))
    new = backup.create(ctx.settings, root / "new")
    monkeypatch.setenv("HRK_BACKUP_RETENTION_DAYS", "7")
    out = cli(monkeypatch, ctx.settings, "backup", "prune", str(root))
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in root.iterdir()) == ["new", "not-a-backup"]
    key_files = sorted(p.name for p in (ctx.settings.data_dir / "keys" / backup_keys.FOLDER).iterdir())
    assert key_files == [f"{new['backup_id']}.jsonl"]
    assert "已删除 2 个超过 7 天的备份" in out.output


def test_the_retention_setting_defaults_to_30_days_and_is_at_least_one(monkeypatch):
    monkeypatch.delenv("HRK_BACKUP_RETENTION_DAYS", raising=False)
    assert Settings().backup_retention_days == 30
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(backup_retention_days=0)


# --- helpers -----------------------------------------------------------------------------------------


def clock_now() -> Any:
    from huirongke.kit.clock import utcnow

    return utcnow()


def cli(monkeypatch: Any, settings: Settings, *args: str) -> Any:
    """The `huirongke` CLI with the environment naming `settings`' data dir and database."""
    from huirongke.cli import app

    monkeypatch.setenv("HRK_ENV", "dev")
    monkeypatch.setenv("HRK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HRK_LOG_LEVEL", "WARNING")
    if settings.database_url:
        monkeypatch.setenv("HRK_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("HRK_DATABASE_URL", raising=False)
    monkeypatch.delenv("HRK_REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()
