"""Uploads never stall others (issue 8): images are decoded in a bounded pool of worker processes,
outside any database lock; excess uploads are refused rather than queued without end; each user has
an upload rate and a storage quota; files nobody references any more are deleted."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import auth, sign_up
from huirongke.kit.clock import clock
from huirongke.kit.workers import WORKER_NICENESS, WorkerPool
from huirongke.media.models import Media
from huirongke.privacy.models import AuditEvent


@pytest.fixture
def settings(settings):
    settings.media_workers = 1
    settings.media_queue = 1
    return settings


def png(size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    out = io.BytesIO()
    if noise:  # incompressible: the stored (re-encoded) PNG is about as big as its pixels
        Image.frombytes("RGBA", size, os.urandom(size[0] * size[1] * 4)).save(out, format="PNG")
    else:
        Image.new("RGB", size, (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def upload(client, token: str, data: bytes):
    return client.post("/api/v1/media", files={"file": ("a.png", data, "image/png")}, headers=auth(token))


def set_avatar(client, token: str, media_id: str | None):
    return client.patch("/api/v1/me", json={"avatar_media_id": media_id}, headers=auth(token))


def wait_until(predicate, what: str) -> None:
    """Wait for a state of the system (not for a duration): fail only if it never comes."""
    event = threading.Event()
    for _ in range(6000):
        if predicate():
            return
        event.wait(0.01)
    pytest.fail(f"never reached: {what}")


def block_the_worker(ctx, fifo: Path):
    """Occupy the pool's only worker until the test opens `fifo` for writing (os.open of a FIFO for
    reading blocks until a writer comes): deterministic, with no sleeps."""
    os.mkfifo(fifo)
    return ctx.workers.submit(os.open, str(fifo), os.O_RDONLY)


def release_the_worker(fifo: Path) -> None:
    os.close(os.open(fifo, os.O_WRONLY))


def test_an_upload_waiting_for_its_decode_holds_no_writer_and_others_sign_in(client, ctx, tmp_path):
    uploader, _ = sign_up(client, "13800138001")
    fifo = tmp_path / "gate"
    blocker = block_the_worker(ctx, fifo)
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.update(r=upload(client, uploader, png((1200, 900)))))
    thread.start()
    try:
        # the upload has been read, checked and handed to the pool: it waits there for the worker
        wait_until(lambda: ctx.workers.admitted == 2, "the upload waiting in the pool")
        # ... and meanwhile nobody holds the database's writer: sign-ins (writers) go through at once
        writer = ctx.db.try_claim_writer()
        assert writer is not None, "an upload waiting for its decode holds the database writer"
        writer.release()
        for phone in ("13800138002", "13800138003", "13800138004"):
            token, user = sign_up(client, phone)
            assert token and user["id"]
        # the pool is full (one running, one waiting): the next upload is refused at once, not queued
        other, _ = sign_up(client, "13800138005")
        r = upload(client, other, png())
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "media_busy"
        assert int(r.headers["Retry-After"]) >= 1
        assert "results" not in results and not results  # still waiting
    finally:
        release_the_worker(fifo)
        thread.join()
    blocker.result()
    assert results["r"].status_code == 201, results["r"].text
    assert results["r"].json()["width"] == 1200


def test_one_user_has_one_upload_in_the_pool_at_a_time(client, ctx, tmp_path, settings):
    ctx.workers.capacity = 3  # room in the pool, so the per-user bound is what answers
    uploader, _ = sign_up(client, "13800138001")
    fifo = tmp_path / "gate"
    blocker = block_the_worker(ctx, fifo)
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.update(r=upload(client, uploader, png())))
    thread.start()
    try:
        wait_until(lambda: ctx.workers.admitted == 2, "the first upload waiting in the pool")
        r = upload(client, uploader, png())
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "media_in_progress"
        assert r.headers["Retry-After"]
    finally:
        release_the_worker(fifo)
        thread.join()
    blocker.result()
    assert results["r"].status_code == 201


def test_heavy_uploads_while_others_sign_in(client, ctx):
    """Several users upload large images while others sign in: every sign-in succeeds (no 503), and
    every upload is either processed or refused with 503 media_busy, never a 500."""
    uploaders = [sign_up(client, f"1390000000{i}")[0] for i in range(3)]
    heavy = png((5000, 4000))  # 20 megapixels to decode and scale
    uploads: list[Any] = []
    signins: list[Any] = []

    def sign_in(phone: str) -> None:
        signins.append(sign_up(client, phone))

    def send(token: str) -> None:
        uploads.append(upload(client, token, heavy))

    threads = [threading.Thread(target=send, args=(t,)) for t in uploaders]
    threads += [threading.Thread(target=sign_in, args=(f"1370000000{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(signins) == 4  # sign_up asserts each answered 201
    statuses = sorted(r.status_code for r in uploads)
    assert set(statuses) <= {201, 503}, [r.text for r in uploads]
    assert 201 in statuses
    for r in uploads:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "media_busy" and r.headers["Retry-After"]


def test_a_worker_over_its_memory_limit_fails_alone():
    pool = WorkerPool(workers=1, memory_mb=256, queue=0)
    try:
        with pytest.raises(MemoryError):
            asyncio.run(pool.run(bytearray, 512 * 1024 * 1024))
        assert asyncio.run(pool.run(len, b"still works")) == 11
        assert pool.admitted == 0
    finally:
        pool.shutdown()


def test_an_image_too_big_for_the_worker_memory_is_413_not_500(client, ctx, settings):
    settings.media_worker_memory_mb = 256
    ctx.workers = WorkerPool(1, 256, 1)
    try:
        token, _ = sign_up(client)
        r = upload(client, token, png((7000, 5000)))  # 35 MP: under the pixel limit, over the memory
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "image_too_large"
    finally:
        ctx.workers.shutdown()


def test_uploads_per_minute_are_limited(client, ctx, settings):
    settings.upload_rate_per_minute = 2
    token, _ = sign_up(client)
    assert upload(client, token, png()).status_code == 201
    assert upload(client, token, png()).status_code == 201
    r = upload(client, token, png())
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "upload_rate_limited"
    assert "上传过于频繁" in r.json()["error"]["message"]
    assert int(r.headers["Retry-After"]) >= 1
    other, _ = sign_up(client, "13800138009")  # another user's budget is their own
    assert upload(client, other, png()).status_code == 201


def _files(ctx) -> list[str]:
    root = ctx.settings.media_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_quota_counts_stored_bytes_and_a_replaced_avatar_frees_it(client, ctx, settings):
    settings.upload_quota_mb = 1
    token, _ = sign_up(client)
    first = upload(client, token, png((400, 400), noise=True))  # ~640 KB stored
    assert first.status_code == 201, first.text
    r = upload(client, token, png((400, 400), noise=True))
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "upload_quota_exceeded"
    assert "存储空间" in error["message"] and error["details"]["quota_mb"] == 1
    assert len(_files(ctx)) == 1  # the refused upload's file was not kept
    # a small one still fits; making it the avatar after the big one deletes the big one
    small = upload(client, token, png())
    assert small.status_code == 201
    assert set_avatar(client, token, first.json()["id"]).status_code == 200
    assert set_avatar(client, token, small.json()["id"]).status_code == 200
    assert upload(client, token, png((400, 400), noise=True)).status_code == 201


def test_a_replaced_avatar_is_deleted_and_its_url_is_gone(client, ctx):
    token, user = sign_up(client)
    h = auth(token)
    old = upload(client, token, png()).json()
    new = upload(client, token, png((30, 30))).json()
    assert client.patch("/api/v1/me", json={"avatar_media_id": old["id"]}, headers=h).status_code == 200
    assert client.get(old["url"]).status_code == 200
    r = client.patch("/api/v1/me", json={"avatar_media_id": new["id"]}, headers=h)
    assert r.status_code == 200, r.text
    assert client.get(old["url"]).status_code == 404
    assert client.get(new["url"]).status_code == 200
    assert not ctx.storage.exists(old["url"].removeprefix("/media/"))
    with ctx.db.session(write=False) as s:
        assert s.get(Media, old["id"]) is None
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.subject_id == user["id"])))
    assert "media.deleted" in actions
    # clearing the avatar deletes it too
    assert client.patch("/api/v1/me", json={"avatar_media_id": None}, headers=h).status_code == 200
    assert client.get(new["url"]).status_code == 404


def test_media_nobody_uses_are_deleted_after_the_grace_period(client, ctx, settings):
    token, _ = sign_up(client)
    avatar = upload(client, token, png()).json()
    unused = upload(client, token, png((20, 20))).json()
    assert set_avatar(client, token, avatar["id"]).status_code == 200
    ctx.storage.put("img/zz/stray.jpg", b"a file whose upload never got its row")
    assert ctx.jobs.run_now("media.orphans") == 0  # within the grace period nothing goes
    clock.advance(timedelta(hours=settings.media_orphan_grace_hours + 1))
    assert ctx.jobs.run_now("media.orphans") == 2  # the unused row (and its file), the stray file
    assert client.get(unused["url"]).status_code == 404
    assert client.get(avatar["url"]).status_code == 200
    assert "img/zz/stray.jpg" not in _files(ctx)
    with ctx.db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Media)) == 1


def test_workers_yield_the_cpu_to_requests():
    pool = WorkerPool(workers=1, memory_mb=512, queue=0)
    try:
        assert asyncio.run(pool.run(os.nice, 0)) == min(19, os.nice(0) + WORKER_NICENESS)
    finally:
        pool.shutdown()
