"""Image uploads: decoded and re-encoded by Pillow in the media worker pool (`imaging.py`,
`kit/workers.py`), so every byte we keep is ours and metadata-free, and no decode ever runs under a
database lock. An upload is three short steps: checks in a read unit, the work in a worker process,
then one short write unit that records the row.

Per user: at most `HRK_UPLOAD_RATE_PER_MINUTE` uploads a minute (429 `upload_rate_limited`) and at
most `HRK_UPLOAD_QUOTA_MB` of stored files (413 `upload_quota_exceeded`: the quota counts the stored,
re-encoded bytes, so a user frees room by replacing or deleting files). A file nobody references any
more (a replaced avatar) is deleted with its row, and a periodic job deletes media that were never
used after a grace period, and files left without a row; their old URLs then answer 404."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.db import Writer, after_commit
from huirongke.kit.errors import AppError, BadRequest, NotFound, RateLimited, TooLarge, Unauthorized
from huirongke.kit.jobs import job
from huirongke.media.models import Media
from huirongke.privacy import audit, consent

log = structlog.get_logger(__name__)


def media_url(media: Media | None) -> str | None:
    return f"/media/{media.storage_key}" if media else None


class QuotaExceeded(AppError):
    status = 413
    code = "upload_quota_exceeded"

    def __init__(self, quota_bytes: int, used_bytes: int) -> None:
        quota_mb = quota_bytes // (1024 * 1024)
        super().__init__(
            f"您的存储空间（{quota_mb} MB）已用完，请删除或替换不用的图片后再上传",
            details={"quota_mb": quota_mb, "used_mb": round(used_bytes / (1024 * 1024), 1)},
        )


def check_rate(ctx: AppContext, owner_id: str) -> None:
    """429 `upload_rate_limited` past HRK_UPLOAD_RATE_PER_MINUTE uploads a minute (counted as tried)."""
    retry = ctx.limiter.hit(f"upload:{owner_id}", ctx.settings.upload_rate_per_minute, 60)
    if retry:
        error = RateLimited(retry, "上传过于频繁，请稍后再试")
        error.code = "upload_rate_limited"
        raise error


def _used_bytes(session: Session, owner_id: str) -> int:
    total = select(func.coalesce(func.sum(Media.size), 0)).where(Media.owner_id == owner_id)
    return int(session.scalar(total) or 0)


def check_before_upload(ctx: AppContext, owner_id: str, source: str | None) -> None:
    """In a read unit: the capture permission (P40) and room left in the quota."""
    with ctx.db.session(write=False) as session:
        if source is not None:
            consent.check_permission(session, owner_id, source)
        quota = ctx.settings.upload_quota_mb * 1024 * 1024
        used = _used_bytes(session, owner_id)
        if used >= quota:
            raise QuotaExceeded(quota, used)


def check_size(ctx: AppContext, data: bytes) -> None:
    if not data:
        raise BadRequest("文件为空", code="empty_file")  # API.md: an empty file is 400
    if len(data) > ctx.settings.avatar_max_bytes:
        limit_mb = ctx.settings.avatar_max_bytes // (1024 * 1024)
        raise TooLarge(f"图片不能超过 {limit_mb} MB", code="file_too_large")


def storage_key(mime: str) -> str:
    ext = "png" if mime == "image/png" else "jpg"
    return f"img/{secrets.token_hex(2)}/{secrets.token_urlsafe(18)}.{ext}"


def record_image(
    ctx: AppContext, writer: Writer, owner_id: str, key: str, size: int, mime: str, width: int, height: int
) -> Media:
    """The short write unit of an upload: the file is already stored under `key`. Deletes the file
    again when the row cannot be written (the user went away, the quota filled meanwhile, a fault)."""
    try:
        with ctx.db.session(writer=writer) as session:
            from huirongke.accounts.models import User  # media is below accounts; only the row is read

            user = session.get(User, owner_id)
            if user is None or user.status != "active":
                raise Unauthorized("登录已过期，请重新登录", code="token_expired")
            quota = ctx.settings.upload_quota_mb * 1024 * 1024
            used = _used_bytes(session, owner_id)
            if used + size > quota:
                raise QuotaExceeded(quota, used)
            media = Media(
                owner_id=owner_id,
                kind="image",
                mime=mime,
                storage_key=key,
                size=size,
                width=width,
                height=height,
                status="ready",
                created_at=utcnow(),
            )
            session.add(media)
            session.flush()
            audit.user_action(session, owner_id, "media.uploaded", ["media.storage_key"])
        return media
    except BaseException:
        try:
            ctx.storage.delete(key)
        except OSError:
            log.warning("media_file_not_removed")  # the orphan job removes it later
        raise


def owned_image(session: Session, owner_id: str, media_id: str) -> Media:
    media = session.scalar(select(Media).where(Media.id == media_id, Media.owner_id == owner_id))
    if media is None or media.kind != "image":
        raise NotFound("找不到该图片", code="media_not_found")
    return media


def by_storage_key(session: Session, key: str) -> Media | None:
    return session.scalar(select(Media).where(Media.storage_key == key))


# --- files nobody references --------------------------------------------------------------------------


def _references() -> list[InstrumentedAttribute[Any]]:
    """The columns that point at a media row. A feature that shows media (posts, later) adds its
    column here, or the orphan job deletes its files after the grace period."""
    from huirongke.accounts.models import User

    return [User.avatar_media_id]


def _referenced(media_id: Any) -> ColumnElement[bool]:
    return or_(*(exists().where(column == media_id) for column in _references()))


def _drop(ctx: AppContext, session: Session, rows: list[Media], action: str) -> None:
    """Delete the rows now and their files once the transaction commits (a rollback keeps both)."""
    if not rows:
        return
    keys = [m.storage_key for m in rows]
    session.execute(delete(Media).where(Media.id.in_([m.id for m in rows])))
    for m in rows:
        audit.record(
            session,
            "media.deleted",
            actor_type="system",
            actor_id=action,
            subject_id=m.owner_id,
            fields=["media.storage_key"],
            purpose="profile",
        )

    def remove_files() -> None:
        for key in keys:
            try:
                ctx.storage.delete(key)
            except OSError:
                log.warning("media_file_not_removed")  # a file without a row: the orphan job retries

    after_commit(session, remove_files)


def release(ctx: AppContext, session: Session, media_id: str | None) -> None:
    """A media row the caller stopped referencing (a replaced avatar): delete it, and its file after
    the commit, unless something else still references it. Flushes first, so the caller's own change
    counts."""
    if not media_id:
        return
    session.flush()
    row = session.scalar(select(Media).where(Media.id == media_id, ~_referenced(Media.id)))
    if row is not None:
        _drop(ctx, session, [row], "media.replaced")


ORPHAN_BATCH = 500


def delete_orphans(ctx: AppContext) -> int:
    """Media no column references, uploaded more than the grace period ago, and files in the store
    older than the grace period that no row names (an upload that failed after storing its file)."""
    cutoff = utcnow() - timedelta(hours=ctx.settings.media_orphan_grace_hours)
    deleted = 0
    with ctx.db.session() as session:
        rows = list(
            session.scalars(
                select(Media).where(Media.created_at < cutoff, ~_referenced(Media.id)).limit(ORPHAN_BATCH)
            )
        )
        _drop(ctx, session, rows, "media.orphaned")
        deleted += len(rows)
    stray = list(ctx.storage.keys_older_than(cutoff))
    for i in range(0, len(stray), ORPHAN_BATCH):
        batch = stray[i : i + ORPHAN_BATCH]
        with ctx.db.session(write=False) as session:
            known = set(session.scalars(select(Media.storage_key).where(Media.storage_key.in_(batch))))
        for key in batch:
            if key not in known:
                ctx.storage.delete(key)
                deleted += 1
    if deleted:
        log.info("media_orphans_deleted", count=deleted)
    return deleted


@job("media.orphans", every_minutes=60)
def orphans_job(ctx: AppContext) -> int:
    return delete_orphans(ctx)
