"""Media upload and delivery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from huirongke.accounts.deps import DB, READ, WRITE, Ctx, CurrentIdentity, UnitRoute
from huirongke.kit.errors import Invalid, NotFound
from huirongke.kit.limits import LimitExceeded
from huirongke.media import imaging, service

router = APIRouter(tags=["media"], route_class=UnitRoute)


class MediaOut(BaseModel):
    id: str
    kind: str
    status: str
    url: str
    width: int | None
    height: int | None


Source = Annotated[
    Literal["camera", "album"] | None,
    Query(
        description="Where the client took the file from: `camera` or `album` (the OS permission it "
        "used). Declared, the upload is refused with 428 `permission_required` unless the client's "
        "latest report for that permission is `granted` (P40). Omit it for a file picker that "
        "needs no OS permission."
    ),
]


@router.post(
    "/api/v1/media",
    status_code=201,
    response_model=MediaOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                }
            },
            "required": True,
        },
        # A write, in a short unit of its own opened once the image is processed (see below): the
        # route takes no request-long `DB` session.
        **WRITE["openapi_extra"],
    },
)
async def upload(request: Request, who: CurrentIdentity, ctx: Ctx, source: Source = None) -> MediaOut:
    """Checks (read unit), then the body, then decoding and re-encoding in the media worker pool, then
    storing the file, then one short write unit for the row. Nothing holds the database's writer, or a
    request thread, while the body arrives or the image is processed: a heavy upload never stalls
    another user's sign-in."""
    owner = who.user_id
    # The body's size (Content-Length, then as it streams) and arrival time are bounded by
    # kit/limits.py with this route's limit (app.py), before and while the body is read.
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Invalid("请以 multipart/form-data 上传，字段名为 file", code="multipart_required", status=415)
    service.check_rate(ctx, owner)
    await run_in_threadpool(service.check_before_upload, ctx, owner, source)
    data = await _read_file(request, ctx.settings.avatar_max_bytes)
    service.check_size(ctx, data)
    body, mime, width, height = await ctx.workers.run(
        imaging.reencode, data, ctx.settings.avatar_max_pixels, owner=owner
    )
    key = service.storage_key(mime)
    await run_in_threadpool(ctx.storage.put, key, body)
    try:
        writer = await ctx.db.claim_writer_async()
    except BaseException:
        await run_in_threadpool(ctx.storage.delete, key)
        raise
    size = len(body)
    media = await run_in_threadpool(service.record_image, ctx, writer, owner, key, size, mime, width, height)
    return MediaOut(
        id=media.id,
        kind=media.kind,
        status=media.status,
        url=service.media_url(media) or "",
        width=media.width,
        height=media.height,
    )


async def _read_file(request: Request, limit: int) -> bytes:
    """The `file` part (at most `limit` + 1 bytes of it)."""
    try:
        form = await request.form(max_files=1, max_fields=5, max_part_size=limit + 1)
    except LimitExceeded:  # too large or too slow (kit/limits.py): its own answer
        raise
    except Exception:
        raise Invalid("上传内容无法解析", code="malformed_upload", status=400) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Invalid("请选择要上传的文件（字段名 file）", code="file_required")
    return await upload.read(limit + 1)


@router.get("/media/{key:path}", include_in_schema=False, **READ)
def serve_media(key: str, ctx: Ctx, session: DB) -> Response:
    media = service.by_storage_key(session, key)
    if media is None or not ctx.storage.exists(key):
        raise NotFound("文件不存在", code="media_not_found")
    return Response(
        ctx.storage.get(key),
        media_type=media.mime,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
