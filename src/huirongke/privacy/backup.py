"""Backups that forget: create, verify, restore and prune.

A backup is a folder holding a consistent copy of the database (SQLite: `VACUUM INTO`, which reads
one snapshot while the service runs; PostgreSQL: `pg_dump`, one snapshot too) without its data keys
(those go to `keys/backup-keys/`, see `privacy.backup_keys`), the media files that a row names, each
sealed under its owner's data key (so an erased owner's files cannot be opened either), and
`manifest.json`: format version, backup id, time, database kind, schema revision, the erasure
ledger's length at backup time, and every file with its size and SHA-256. The manifest is sealed with
a MAC under the master key, so a restore notices a changed manifest as well as a changed file.
`keys/` (master key, erasure ledger, audit anchor, the backups' data keys) is never in a backup; logs
and the job store are not either (a restore needs neither, and logs have their own retention).

A restore goes into an empty data dir only, with the keys dir as it is now. It checks every file,
loads the database, migrates it, puts back the data keys the backup's key file still holds, opens
the media files whose owners still have one, deletes media files no restored row names, replays every
erasure the ledger holds that the restored database does not reflect (`privacy.replay`) before it
returns. The service does the same replay at start, so a restore by hand cannot bring anyone back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import make_url

from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.crypto import FieldCipher, KeyRing
from huirongke.kit.db import table
from huirongke.privacy import backup_keys, ledger
from huirongke.privacy.models import DataKey

FORMAT = "huirongke-backup"
VERSION = 1
MANIFEST = "manifest.json"
UNFINISHED = ".unfinished"  # in a backup folder being written, and in a data dir being restored
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
MEDIA = "media"
_BUF = 1024 * 1024

Say = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is for the operator."""


@dataclass(frozen=True)
class RestoreResult:
    files: int
    replayed: int
    orphans_removed: int


def _quiet(_: str) -> None:
    pass


# --- files ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_BUF):
            h.update(chunk)
    return h.hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _copy_private(src: Path, dst: Path) -> None:
    """Copy a file so that only the owner can ever read the copy (created 0600, never wider)."""
    _private_dir(dst.parent)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(fin, fout, _BUF)
        fout.flush()
        os.fsync(fout.fileno())


def _write_new_private(path: Path, data: bytes) -> None:
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _media_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part"))


def _is_empty_dir(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


# --- the database --------------------------------------------------------------------------------------


def database_kind(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise BackupError(f"不支持备份这种数据库：{url.split(':', 1)[0]}")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("SQLite 数据库不是文件，无法备份")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for pg_dump/pg_restore, and the environment carrying the password
    (never on the command line, where `ps` would show it)."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    uri = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"找不到 {name}：PostgreSQL 的备份与恢复需要它。请安装与数据库服务器主版本相同的 PostgreSQL "
            f"客户端工具（Debian/Ubuntu：apt-get install postgresql-client-<版本>），并确保 {name} 在 PATH 中"
        )
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # pg tools' messages name objects, not row contents; keep the tail for the operator.
        raise BackupError(f"{what}失败（退出码 {done.returncode}）：{done.stderr.strip()[-800:]}")


def _schema_revision(url: str) -> str | None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def _read_keys(url: str) -> list[backup_keys.Row]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            keys = table(DataKey)
            rows = conn.execute(select(keys.c.subject_id, keys.c.wrapped_key, keys.c.created_at)).all()
    finally:
        engine.dispose()
    return [(r[0], bytes(r[1]), r[2]) for r in rows]


def _file_owners(url: str) -> dict[str, str]:
    """storage key → the user id of the row naming it, for every file column the data map declares."""
    from huirongke.privacy import registry

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    out: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for t in registry.personal_tables():
                if t.link.via != "user_id" or not t.link.column:
                    continue
                for c in t.columns:
                    if c.cls.category.endswith(".file"):
                        q = select(t.table.c[c.name], t.table.c[t.link.column]).where(
                            t.table.c[c.name].is_not(None)
                        )
                        out.update({str(k): str(u) for k, u in conn.execute(q)})
    finally:
        engine.dispose()
    return out


def _take_keys_out(copy: Path) -> list[backup_keys.Row]:
    """Read the data keys out of a SQLite copy, then delete them from it and rewrite it, so the
    copy's file keeps no trace of them."""
    rows = _read_keys(f"sqlite:///{copy}")
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("DELETE FROM data_keys")
        conn.execute("VACUUM")
    finally:
        conn.close()
    return rows


def _dump_database(url: str, dest: Path) -> tuple[str, list[backup_keys.Row]]:
    """The database copy (its data keys left out) and the data keys."""
    kind = database_kind(url)
    if kind == "sqlite":
        source = _sqlite_path(url)
        if not source.exists():
            raise BackupError(f"数据库文件不存在：{source}")
        out = dest / SQLITE_FILE
        conn = sqlite3.connect(source, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete=ON")
            # One read snapshot, written compactly: no free pages, so no leftovers of deleted rows.
            conn.execute("VACUUM INTO ?", (str(out),))
        finally:
            conn.close()
        out.chmod(0o600)
        return SQLITE_FILE, _take_keys_out(out)
    uri, env = _libpq(url)
    out = dest / PG_FILE
    _run(
        [
            _pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--exclude-table-data=data_keys",  # kept in keys/backup-keys/ instead
            "--file",
            str(out),
            "--dbname",
            uri,
        ],
        env,
        "pg_dump ",
    )
    out.chmod(0o600)
    return PG_FILE, _read_keys(url)


def _database_is_empty(url: str) -> bool:
    if database_kind(url) == "sqlite":
        path = _sqlite_path(url)
        return not path.exists() or path.stat().st_size == 0
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return not inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _load_database(kind: str, file: Path, url: str) -> None:
    if kind == "sqlite":
        target = _sqlite_path(url)
        for suffix in ("-wal", "-shm", "-journal"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        _copy_private(file, target)
        return
    uri, env = _libpq(url)
    _run(
        [
            _pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--dbname",
            uri,
            str(file),
        ],
        env,
        "pg_restore ",
    )


# --- the manifest --------------------------------------------------------------------------------------


def _ring(keys_dir: Path) -> KeyRing:
    master = keys_dir / "master.key"
    if not master.is_file():
        raise BackupError(f"钥匙目录中没有 master.key：{keys_dir}")
    return KeyRing(master.read_bytes())


def _mac(ring: KeyRing, body: dict[str, Any]) -> str:
    return ring.mac("backup-manifest", json.dumps(body, sort_keys=True, ensure_ascii=False))


def read_manifest(src: Path, ring: KeyRing) -> dict[str, Any]:
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} 不是完整的备份：缺少 {MANIFEST}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        body, mac = {k: v for k, v in doc.items() if k != "mac"}, doc["mac"]
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{MANIFEST} 无法读取：备份已损坏") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise BackupError(f"不认识的备份格式：{doc.get('format')} 第 {doc.get('version')} 版")
    if mac != _mac(ring, body):
        raise BackupError(f"{MANIFEST} 校验失败：清单被改动过，或备份不是用这个钥匙目录的主密钥创建的")
    return body


def verify(src: Path, ring: KeyRing, say: Say = _quiet) -> dict[str, Any]:
    """Check the manifest's MAC and every file's size and SHA-256; raise BackupError on any mismatch."""
    manifest = read_manifest(src, ring)
    root = src.resolve()
    listed = set()
    for n, item in enumerate(manifest["files"], start=1):
        rel = str(item["path"])
        path = (root / rel).resolve()
        if root not in path.parents:
            raise BackupError(f"备份清单中的路径越界：{rel}")
        listed.add(path)
        if not path.is_file():
            raise BackupError(f"备份文件缺失：{rel}")
        if path.stat().st_size != item["size"] or _sha256(path) != item["sha256"]:
            raise BackupError(f"备份文件校验失败：{rel} 的内容已被改动或损坏，未做任何恢复")
        if n % 500 == 0:
            say(f"  已校验 {n}/{len(manifest['files'])} 个文件")
    extra = [p for p in root.rglob("*") if p.is_file() and p not in listed and p.name != MANIFEST]
    if extra:
        raise BackupError(f"备份中有清单以外的文件：{extra[0].relative_to(root)}")
    return manifest


# --- create --------------------------------------------------------------------------------------------


def create(settings: Settings, dest: Path, say: Say = _quiet) -> dict[str, Any]:
    """Write a backup of the data dir (except keys/) into `dest`, which must be empty or absent."""
    keys_dir = settings.data_dir / "keys"
    ring = _ring(keys_dir)
    if not _is_empty_dir(dest):
        raise BackupError(f"备份目录必须为空或不存在：{dest}")
    if keys_dir.resolve() == dest.resolve() or keys_dir.resolve() in dest.resolve().parents:
        raise BackupError("备份不能写进 keys/ 目录")
    url = settings.resolved_database_url
    kind = database_kind(url)
    created_at = utcnow()
    _private_dir(dest)
    backup_keys.write_atomic(dest / UNFINISHED, created_at.isoformat().encode())
    position = ledger.position(settings.data_dir)

    say(f"1/4 数据库快照（{kind}）…")
    db_file, keys = _dump_database(url, dest)
    revision = _schema_revision(url)
    backup_id = uuid.uuid4().hex
    kept = backup_keys.write(settings.data_dir, backup_id, created_at, keys)
    say(f"  数据密钥 {len(kept)} 个已存入 keys/{backup_keys.FOLDER}/（不在备份中）")

    media = _media_files(settings.media_dir)
    say(f"2/4 加密复制媒体文件：{len(media)} 个…")
    owners = _file_owners(url)
    wrapped = {subject: key for subject, key, _ in kept}
    copied: list[tuple[str, str]] = []
    for n, path in enumerate(media, start=1):
        rel = path.relative_to(settings.media_dir).as_posix()
        owner = owners.get(rel)
        if owner is None or owner not in wrapped:
            continue  # no row names it, or its owner is being erased: no restore could use it
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # deleted since it was listed (e.g. by an erasure): not in this backup
        cipher = FieldCipher(ring.unwrap(wrapped[owner], owner), owner)
        _write_new_private(dest / MEDIA / rel, cipher.seal_bytes(f"backup-media:{rel}", data))
        copied.append((f"{MEDIA}/{rel}", owner))
        if n % 500 == 0:
            say(f"  已复制 {n}/{len(media)}")

    say("3/4 计算校验和…")
    files: list[dict[str, Any]] = []
    for rel, owner in [(db_file, None), *copied]:
        path = dest / rel
        item = {"path": rel, "size": path.stat().st_size, "sha256": _sha256(path)}
        files.append(item if owner is None else {**item, "owner": owner})

    say("4/4 写入清单…")
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created_at.isoformat(),
        "backup_id": backup_id,
        "database": kind,
        "schema_revision": revision,
        "ledger_position": position,
        "files": files,
    }
    doc = {**body, "mac": _mac(ring, body)}
    backup_keys.write_atomic(dest / MANIFEST, json.dumps(doc, ensure_ascii=False, indent=1).encode())
    (dest / UNFINISHED).unlink()
    for d in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        d.chmod(0o700)
    say(f"备份完成：{dest}（{len(files)} 个文件，注销记录位置 {position}）")
    return body


# --- restore -------------------------------------------------------------------------------------------


def restore(
    settings: Settings,
    src: Path,
    keys_dir: Path,
    say: Say = _quiet,
    *,
    fail: Callable[[str], None] | None = None,
) -> RestoreResult:
    """Restore the backup in `src` into the (empty) data dir and database of `settings`, with the keys
    dir as it is now; every erasure the backup does not reflect is replayed before this returns."""
    ring = _ring(keys_dir)
    data_dir = settings.data_dir
    if (data_dir / UNFINISHED).exists():
        raise BackupError(
            f"{data_dir} 中有一次未完成的恢复：运行 `huirongke backup replay`（或启动服务）即可把它做完"
        )
    if not _is_empty_dir(data_dir):
        raise BackupError(f"只能恢复到空的数据目录：{data_dir} 不是空的")
    url = settings.resolved_database_url
    if not _is_empty_dir(settings.media_dir):
        raise BackupError(f"只能恢复到空的媒体目录：{settings.media_dir} 不是空的")
    if not _database_is_empty(url):
        raise BackupError("只能恢复到空的数据库：目标数据库中已有数据表")

    say("1/6 校验备份…")
    manifest = verify(src, ring, say)
    kind = database_kind(url)
    if manifest["database"] != kind:
        raise BackupError(f"备份来自 {manifest['database']} 数据库，目标却是 {kind}")
    keys = backup_keys.read(keys_dir, str(manifest["backup_id"]))
    if keys is None:
        raise BackupError(
            f"钥匙目录中没有这份备份的数据密钥文件 {backup_keys.FOLDER}/{manifest['backup_id']}.jsonl："
            "备份已被清理，或钥匙目录不是当前的"
        )

    say("2/6 放入钥匙目录…")
    _private_dir(data_dir)
    backup_keys.write_atomic(data_dir / UNFINISHED, str(manifest["created_at"]).encode())
    shutil.copytree(keys_dir, data_dir / "keys")
    (data_dir / "keys").chmod(0o700)

    say("3/6 恢复数据库…")
    db_item = next(f for f in manifest["files"] if not str(f["path"]).startswith(MEDIA + "/"))
    _load_database(kind, src / db_item["path"], url)

    media = [f for f in manifest["files"] if str(f["path"]).startswith(MEDIA + "/")]
    say(f"4/6 恢复媒体文件：{len(media)} 个…")
    wrapped = {subject: key for subject, key, _ in keys}
    for item in media:
        rel, owner = str(item["path"]).removeprefix(MEDIA + "/"), str(item["owner"])
        if owner not in wrapped:
            continue  # its owner was erased: the key is gone, and so is the file
        cipher = FieldCipher(ring.unwrap(wrapped[owner], owner), owner)
        data = cipher.open_bytes(f"backup-media:{rel}", (src / item["path"]).read_bytes())
        _write_new_private(settings.media_dir / rel, data)

    say("5/6 升级数据库结构，并在审计锚点中记录这次恢复…")
    from huirongke.migrate import upgrade

    upgrade(url)
    _reattach(settings, keys)

    later = len(ledger.entries(data_dir)) - int(manifest["ledger_position"])
    say(f"6/6 重放注销（备份之后新增 {max(later, 0)} 条注销记录）…")
    replayed, orphans = finish(settings, say, fail=fail)
    say(f"恢复完成：重放 {replayed} 个注销，删除 {orphans} 个无主媒体文件")
    return RestoreResult(files=len(manifest["files"]), replayed=replayed, orphans_removed=orphans)


def _reattach(settings: Settings, keys: list[backup_keys.Row]) -> None:
    """Tell the audit anchor (in keys/) that the chain now ends at the restored head, before the replay
    writes new events (heads anchored after the backup belong to the replaced timeline); then put back
    the data keys the backup's key file still holds, for the subjects the restored database knows."""
    from huirongke.accounts.models import User
    from huirongke.context import build_context
    from huirongke.privacy import audit

    ctx = build_context(settings)
    try:
        with ctx.db.session() as session:
            audit.mark_restored(session)
        with ctx.db.session() as session:
            users = set(session.scalars(select(User.id)))
            rows = [{"subject_id": s, "wrapped_key": k, "created_at": t} for s, k, t in keys if s in users]
            if rows:
                session.execute(insert(table(DataKey)), rows)
    finally:
        ctx.db.dispose()


def finish(
    settings: Settings, say: Say = _quiet, *, fail: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """Replay the erasure ledger against the database now; during a restore (the data dir holds the
    unfinished mark, the service is not running) first delete the media no restored row names.
    Finishes an interrupted restore. Returns (replayed, orphans removed).
    `fail` is erasure's crash hook (tests)."""
    from huirongke.context import build_context
    from huirongke.privacy import replay

    restoring = (settings.data_dir / UNFINISHED).exists()
    ctx = build_context(settings)
    try:
        orphans = _remove_orphan_media(ctx) if restoring else 0
        replayed = replay.replay(ctx, say=say, fail=fail)
    finally:
        ctx.db.dispose()
    (settings.data_dir / UNFINISHED).unlink(missing_ok=True)
    return replayed, orphans


def _remove_orphan_media(ctx: Any) -> int:
    """Files in the media folder that no restored row names: uploads after the database snapshot,
    whose owners the restored database does not know (and so no erasure could ever reach)."""
    from huirongke.privacy import registry

    root = Path(ctx.storage.root)
    named: set[str] = set()
    with ctx.db.session(write=False) as s:
        for t in registry.personal_tables():
            for c in t.columns:
                if c.cls.category.endswith(".file"):
                    named.update(k for k in s.scalars(select(t.table.c[c.name])) if k)
    removed = 0
    for path in _media_files(root):
        if path.relative_to(root).as_posix() not in named:
            path.unlink()
            removed += 1
    return removed


# --- prune ---------------------------------------------------------------------------------------------


def backup_time(folder: Path) -> datetime | None:
    """When the backup in `folder` was taken (also for an unfinished one); None if it is no backup."""
    try:
        if (folder / MANIFEST).is_file():
            doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            if doc.get("format") == FORMAT:
                return datetime.fromisoformat(doc["created_at"])
            return None
        if (folder / UNFINISHED).is_file():
            return datetime.fromisoformat((folder / UNFINISHED).read_text().strip())
    except (ValueError, KeyError, TypeError, OSError):
        return None
    return None


def prune(root: Path, days: int, keys_dir: Path, say: Say = _quiet) -> list[Path]:
    """Delete the backups under `root` (folders with a backup manifest, or unfinished ones) taken more
    than `days` days ago, and the key files in `keys_dir` of every backup that old, wherever it is.
    Other folders and files are left alone."""
    if not root.is_dir():
        raise BackupError(f"备份根目录不存在：{root}")
    cutoff = utcnow() - timedelta(days=days)
    for backup_id in backup_keys.prune(keys_dir, cutoff):
        say(f"已删除过期备份的数据密钥文件：{backup_id}")
    removed = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        taken = backup_time(folder)
        if taken is not None and taken < cutoff:
            shutil.rmtree(folder)
            removed.append(folder)
            say(f"已删除过期备份：{folder.name}（{taken:%Y-%m-%d %H:%M} UTC）")
    return removed
