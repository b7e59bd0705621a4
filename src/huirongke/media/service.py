"""Image uploads: decoded and re-encoded by Pillow, so every byte we keep is ours and metadata-free."""

from __future__ import annotations

import io
import secrets
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.errors import BadRequest, NotFound, TooLarge, UnsupportedMedia
from huirongke.media.models import Media
from huirongke.privacy import audit

_ACCEPTED = {"JPEG", "PNG", "WEBP", "GIF", "BMP"}
MAX_EDGE = 2048


def media_url(media: Media | None) -> str | None:
    return f"/media/{media.storage_key}" if media else None


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data))
            if probe.format not in _ACCEPTED:
                raise UnsupportedMedia("仅支持 JPEG、PNG、WebP、GIF 或 BMP 图片", code="unsupported_image")
            if probe.width * probe.height > max_pixels:
                raise TooLarge("图片尺寸过大", code="image_too_large")
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refuses more than MAX_IMAGE_PIXELS (set to our limit above) as it opens the file:
        # the image is too large (413, API.md), not of a wrong type.
        raise TooLarge("图片尺寸过大", code="image_too_large") from None
    except UnidentifiedImageError:
        raise UnsupportedMedia("文件不是有效的图片", code="invalid_image") from None
    except (OSError, SyntaxError, ValueError):
        raise UnsupportedMedia("图片文件已损坏，无法读取", code="invalid_image") from None
    return image


def reencode(data: bytes, max_pixels: int, max_edge: int = MAX_EDGE) -> tuple[bytes, str, int, int]:
    """Return (bytes, mime, width, height) of a fresh image that carries no EXIF, GPS or comments."""
    image = _decode(data, max_pixels)
    image = ImageOps.exif_transpose(image) or image  # keep the visible orientation, drop the tag
    image.thumbnail((max_edge, max_edge))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if has_alpha:
        clean = Image.new("RGBA", image.size)
        clean.paste(image.convert("RGBA"))
        clean.save(out, format="PNG", optimize=True)
        mime = "image/png"
    else:
        clean = Image.new("RGB", image.size)
        clean.paste(image.convert("RGB"))
        clean.save(out, format="JPEG", quality=85, optimize=True)
        mime = "image/jpeg"
    return out.getvalue(), mime, clean.width, clean.height


def upload_image(ctx: AppContext, session: Session, owner_id: str, data: bytes) -> Media:
    if not data:
        raise BadRequest("文件为空", code="empty_file")  # API.md: an empty file is 400
    if len(data) > ctx.settings.avatar_max_bytes:
        limit_mb = ctx.settings.avatar_max_bytes // (1024 * 1024)
        raise TooLarge(f"图片不能超过 {limit_mb} MB", code="file_too_large")
    body, mime, width, height = reencode(data, ctx.settings.avatar_max_pixels)
    ext = "png" if mime == "image/png" else "jpg"
    key = f"img/{secrets.token_hex(2)}/{secrets.token_urlsafe(18)}.{ext}"
    ctx.storage.put(key, body)
    media = Media(
        owner_id=owner_id,
        kind="image",
        mime=mime,
        storage_key=key,
        size=len(body),
        width=width,
        height=height,
        status="ready",
        created_at=utcnow(),
    )
    session.add(media)
    session.flush()
    audit.user_action(session, owner_id, "media.uploaded", ["media.storage_key"])
    return media


def owned_image(session: Session, owner_id: str, media_id: str) -> Media:
    media = session.scalar(select(Media).where(Media.id == media_id, Media.owner_id == owner_id))
    if media is None or media.kind != "image":
        raise NotFound("找不到该图片", code="media_not_found")
    return media


def by_storage_key(session: Session, key: str) -> Media | None:
    return session.scalar(select(Media).where(Media.storage_key == key))
