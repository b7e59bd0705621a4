"""Faults (issue 8): a full disk or a read-only database answers with the API error body (503
`storage_unavailable` with Retry-After), loses nothing committed, and the service recovers once room
is made; logging never raises into a request.

The disk is a real, small tmpfs holding the whole data dir (SQLite, media, jobs, keys, logs). Mounting
needs root: without it the test skips with the reason (fails under HRK_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import errno
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from conftest import auth, missing_service, sign_up
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit import middleware
from huirongke.kit.errors import storage_fault
from huirongke.kit.logging import configure_logging, write_errors
from huirongke.migrate import upgrade


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        missing_service(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path: Path) -> Path:
    ballast = path / "ballast"
    with ballast.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return ballast


def _query_only(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only=ON")


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def _assert_storage_unavailable(r: Any) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert int(r.headers["Retry-After"]) >= 1
    error = r.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert "没有丢失" in error["message"]


def test_a_full_disk_and_a_read_only_database_answer_503_and_lose_nothing(small_disk: Path) -> None:
    settings = Settings(env="dev", data_dir=small_disk / "data", log_level="INFO")
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url)
    ctx = build_context(settings, immediate_jobs=True)
    try:
        with TestClient(create_app(ctx=ctx, log_to_file=True)) as client:
            token, user = sign_up(client, "13800138000")
            h = auth(token)
            assert client.patch("/api/v1/me", json={"nickname": "林小满"}, headers=h).status_code == 200
            with ctx.db.engine.connect() as conn:  # an empty WAL, so the next write must grow a file
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            log_errors = write_errors()
            ballast = _fill(small_disk)

            # a database write, a file write and a new account: each answers 503 with the error body
            _assert_storage_unavailable(client.patch("/api/v1/me", json={"nickname": "新名字"}, headers=h))
            _assert_storage_unavailable(
                client.post("/api/v1/media", files={"file": ("a.png", _png(), "image/png")}, headers=h)
            )
            _assert_storage_unavailable(client.post("/api/v1/auth/sms-codes", json={"phone": "13900139000"}))
            for _ in range(40):  # reads still work (and fill the log file's last page)
                me = client.get("/api/v1/me", headers=h)
                assert me.status_code == 200 and me.json()["nickname"] == "林小满"
            assert write_errors() > log_errors  # the log file could not be written: counted, not raised

            ballast.unlink()  # the operator makes room: the same requests now succeed
            assert client.patch("/api/v1/me", json={"nickname": "林大满"}, headers=h).status_code == 200
            upload = client.post("/api/v1/media", files={"file": ("a.png", _png(), "image/png")}, headers=h)
            assert upload.status_code == 201, upload.text
            other, _ = sign_up(client, "13900139000")

            # A read-only database (SQLite's own SQLITE_READONLY, as for a file it may not write; a
            # remount cannot be used while the server holds its files open).
            event.listen(ctx.db.engine, "connect", _query_only)
            ctx.db.engine.dispose()
            try:
                _assert_storage_unavailable(client.patch("/api/v1/me", json={"nickname": "只读"}, headers=h))
                me = client.get("/api/v1/me", headers=auth(other))
                assert me.status_code == 200
            finally:
                event.remove(ctx.db.engine, "connect", _query_only)
                ctx.db.engine.dispose()
            me = client.get("/api/v1/me", headers=h).json()
            assert me["id"] == user["id"] and me["nickname"] == "林大满"  # nothing committed was lost
            assert client.get(upload.json()["url"]).status_code == 200
            assert client.patch("/api/v1/me", json={"nickname": "恢复"}, headers=h).status_code == 200
    finally:
        configure_logging("WARNING")  # let go of the log file on the tmpfs
        ctx.db.dispose()


def test_storage_faults_are_recognised_whatever_wraps_them() -> None:
    assert storage_fault(OSError(errno.ENOSPC, "No space left on device"))
    assert storage_fault(OSError(errno.EROFS, "Read-only file system"))
    full = OperationalError("INSERT", {}, Exception("database or disk is full"))
    assert storage_fault(full)
    assert storage_fault(OperationalError("UPDATE", {}, Exception("attempt to write a readonly database")))

    class PgDiskFull(Exception):
        sqlstate = "53100"

    assert storage_fault(OperationalError("INSERT", {}, PgDiskFull("could not extend file")))
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError as exc:
            raise RuntimeError("while writing") from exc
    except RuntimeError as wrapped:
        assert storage_fault(wrapped)
    assert not storage_fault(OSError(errno.ENOENT, "missing"))
    assert not storage_fault(OperationalError("BEGIN", {}, Exception("database is locked")))


def test_an_access_log_call_that_raises_never_breaks_the_request(client, monkeypatch) -> None:
    class Exploding:
        def info(self, *_args: Any, **_kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(middleware, "log", Exploding())
    before = write_errors()
    r = client.get("/api/v1/privacy/policy")
    assert r.status_code == 200
    assert write_errors() == before + 1
