"""Decoding and re-encoding images: pure functions of bytes, run in the media worker processes
(`kit/workers.py`), never in a request thread or under a database lock. Every byte we keep is
re-encoded by Pillow, so no EXIF, GPS, XMP or comment metadata survives."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from huirongke.kit.errors import TooLarge, UnsupportedMedia

_ACCEPTED = {"JPEG", "PNG", "WEBP", "GIF", "BMP"}
MAX_EDGE = 2048


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
    """Return (bytes, mime, width, height) of a fresh image that carries no EXIF, GPS or comments.
    An image that needs more memory than the worker may use is too large (413), not a server error."""
    try:
        return _reencode(data, max_pixels, max_edge)
    except MemoryError:
        raise TooLarge("图片过大，无法处理", code="image_too_large") from None


def _reencode(data: bytes, max_pixels: int, max_edge: int) -> tuple[bytes, str, int, int]:
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
