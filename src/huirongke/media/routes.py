"""Media upload and delivery."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from huirongke.accounts.deps import DB, READ, WRITE, Ctx, CurrentUser
from huirongke.kit.errors import Invalid, NotFound, TooLarge
from huirongke.media import service
from huirongke.privacy import consent

router = APIRouter(tags=["media"])


class MediaOut(BaseModel):
    id: str
    kind: str
    status: str
    url: str
    width: int | None
    height: int | None


def _captured_through(
    user: CurrentUser,
    session: DB,
    source: Annotated[
        Literal["camera", "album"] | None,
        Query(
            description="Where the client took the file from: `camera` or `album` (the OS permission it "
            "used). Declared, the upload is refused with 428 `permission_required` unless the client's "
            "latest report for that permission is `granted` (P40). Omit it for a file picker that "
            "needs no OS permission."
        ),
    ] = None,
) -> None:
    if source is not None:
        consent.check_permission(session, user.user.id, source)


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
        **WRITE["openapi_extra"],
    },
)
async def upload(
    request: Request, user: CurrentUser, ctx: Ctx, session: DB, _: Annotated[None, Depends(_captured_through)]
) -> MediaOut:
    limit = ctx.settings.avatar_max_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise TooLarge(f"图片不能超过 {limit // (1024 * 1024)} MB", code="file_too_large")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Invalid("请以 multipart/form-data 上传，字段名为 file", code="multipart_required", status=415)
    # Read at most the limit (plus room for the multipart framing), whatever Content-Length says.
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit + 64 * 1024:
            raise TooLarge(f"图片不能超过 {limit // (1024 * 1024)} MB", code="file_too_large")
    request._body = bytes(body)  # Starlette parses the form from the cached body
    try:
        form = await request.form(max_files=1, max_fields=5, max_part_size=limit + 1)
    except Exception:
        raise Invalid("上传内容无法解析", code="malformed_upload", status=400) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Invalid("请选择要上传的文件（字段名 file）", code="file_required")
    data = await upload.read(limit + 1)
    media = await run_in_threadpool(service.upload_image, ctx, session, user.user.id, data)
    return MediaOut(
        id=media.id,
        kind=media.kind,
        status=media.status,
        url=service.media_url(media) or "",
        width=media.width,
        height=media.height,
    )


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
