"""Media uploads (the foundation accepts images): bad input is refused with the right status, never
a 500, and every stored image is re-encoded so no EXIF/GPS metadata survives."""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any

import pytest
from PIL import ExifTags, Image

from conftest import auth, sign_up

LIMIT = 200_000


@pytest.fixture
def settings(settings):
    settings.avatar_max_bytes = LIMIT
    return settings


@pytest.fixture
def h(client) -> dict[str, str]:
    token, _ = sign_up(client)
    return auth(token)


def image_bytes(
    fmt: str = "PNG", size=(64, 48), mode: str = "RGB", color: Any = (10, 120, 200), **save: Any
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format=fmt, **save)
    return out.getvalue()


def post_file(client, h, data: bytes, name: str = "a.png", mime: str = "image/png"):
    return client.post("/api/v1/media", files={"file": (name, data, mime)}, headers=h)


def assert_error(r, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims the given size, with one tiny compressed row: a decompression bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# --- good uploads -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "color", "mime"),
    [
        ("PNG", "RGB", (1, 2, 3), "image/jpeg"),
        ("JPEG", "RGB", (1, 2, 3), "image/jpeg"),
        ("WEBP", "RGB", (1, 2, 3), "image/jpeg"),
        ("GIF", "P", 3, "image/jpeg"),
        ("BMP", "RGB", (1, 2, 3), "image/jpeg"),
        ("PNG", "RGBA", (1, 2, 3, 100), "image/png"),
    ],
)
def test_images_are_accepted_and_reencoded(client, h, fmt, mode, color, mime):
    r = post_file(client, h, image_bytes(fmt, mode=mode, color=color), name=f"x.{fmt.lower()}")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "image"
    assert body["status"] == "ready"
    assert body["id"] and body["url"].startswith("/media/")
    assert (body["width"], body["height"]) == (64, 48)
    got = client.get(body["url"])
    assert got.status_code == 200
    assert got.headers["content-type"] == mime
    assert Image.open(io.BytesIO(got.content)).size == (64, 48)


def test_large_images_are_scaled_down(client, h):
    r = post_file(client, h, image_bytes("PNG", size=(3000, 1500)))
    assert r.status_code == 201, r.text
    assert max(r.json()["width"], r.json()["height"]) <= 2048


def test_upload_needs_a_token(client):
    assert_error(post_file(client, {}, image_bytes()), 401)


def test_unknown_media_url_is_404(client):
    assert_error(client.get("/media/img/zz/nothing.jpg"), 404)


def test_exif_and_gps_are_removed(client, h):
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Zhang Wei Artist"
    exif[ExifTags.Base.ImageDescription] = "secret description"
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Orientation] = 6  # rotated 90°: the visible orientation is kept, the tag dropped
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (24.0, 28.0, 45.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (118.0, 5.0, 21.0)
    out = io.BytesIO()
    Image.new("RGB", (80, 40), (200, 100, 50)).save(out, format="JPEG", exif=exif, comment=b"Artist comment")
    data = out.getvalue()
    # the input really carries the metadata
    source = Image.open(io.BytesIO(data)).getexif()
    assert source[ExifTags.Base.Artist] == "Zhang Wei Artist"
    assert source.get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Zhang Wei Artist" in data

    r = post_file(client, h, data, name="photo.jpg", mime="image/jpeg")
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"]) == (40, 80)
    got = client.get(r.json()["url"])
    assert got.status_code == 200
    stored = got.content
    image = Image.open(io.BytesIO(stored))
    assert dict(image.getexif()) == {}
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert "exif" not in image.info and "comment" not in image.info
    for needle in (b"Artist", b"Zhang Wei", b"SecretCam", b"secret description", b"Exif\x00\x00"):
        assert needle not in stored
    assert image.size == (40, 80)


def test_png_text_chunks_are_removed(client, h):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Secret Author Name")
    info.add_text("Comment", "home address: 厦门")
    data = image_bytes("PNG", mode="RGBA", color=(1, 2, 3, 4), pnginfo=info)
    assert b"Secret Author Name" in data
    r = post_file(client, h, data)
    assert r.status_code == 201
    stored = client.get(r.json()["url"]).content
    assert b"Secret Author Name" not in stored and b"Author" not in stored


# --- bad input -------------------------------------------------------------------------------------


def test_text_named_png_is_415(client, h):
    assert_error(post_file(client, h, b"this is not an image at all, just text\n" * 20), 415)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a" + b"\x00" * 10,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        b"\xff\xd8\xff\xe0" + b"\x00" * 50,
    ],
)
def test_non_images_and_broken_images_are_415(client, h, data):
    assert_error(post_file(client, h, data), 415)


def test_truncated_jpeg_is_415(client, h):
    data = image_bytes("JPEG", size=(400, 400), color=(5, 6, 7))
    assert_error(post_file(client, h, data[: len(data) // 2], name="a.jpg", mime="image/jpeg"), 415)


def test_unsupported_image_format_is_415(client, h):
    assert_error(post_file(client, h, image_bytes("TIFF"), name="a.tiff", mime="image/tiff"), 415)


def test_oversized_file_is_413(client, h):
    # just over the limit: read and refused
    assert_error(post_file(client, h, os.urandom(LIMIT + 1)), 413, "file_too_large")
    # far over it: refused from the Content-Length alone
    assert_error(post_file(client, h, os.urandom(LIMIT * 3)), 413, "file_too_large")


def test_file_at_the_limit_is_accepted(client, h):
    data = image_bytes("PNG")
    padded = data + b"\x00" * (LIMIT - len(data))  # trailing bytes after IEND
    assert len(padded) == LIMIT
    assert post_file(client, h, padded).status_code == 201


def test_empty_file_is_400(client, h):
    assert_error(post_file(client, h, b""), 400, "empty_file")  # API.md: "an empty file 400"


def test_missing_file_field_is_422(client, h):
    r = client.post("/api/v1/media", files={"picture": ("a.png", image_bytes(), "image/png")}, headers=h)
    assert_error(r, 422)
    # a plain text field named "file" is not a file
    r = client.post(
        "/api/v1/media",
        data={"file": "not a file"},
        files={"other": ("b.txt", b"x", "text/plain")},
        headers=h,
    )
    assert_error(r, 422)


def test_non_multipart_is_415(client, h):
    assert_error(
        client.post("/api/v1/media", content=image_bytes(), headers={**h, "Content-Type": "image/png"}), 415
    )
    assert_error(client.post("/api/v1/media", json={"file": "aGVsbG8="}, headers=h), 415)
    assert_error(client.post("/api/v1/media", headers=h), 415)


def test_broken_multipart_is_4xx(client, h):
    r = client.post(
        "/api/v1/media",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nabc',
        headers={**h, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_error(r, 422, "file_required")  # the part never ends: no file field arrived
    r = client.post("/api/v1/media", content=b"garbage", headers={**h, "Content-Type": "multipart/form-data"})
    assert_error(r, 400, "malformed_upload")


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (7_000, 7_000), (65_535, 65_535), (1, 50_000_000), (50_000, 1_000)],
)
def test_decompression_bomb_is_refused_without_500(client, h, width, height):
    r = post_file(client, h, png_header_only(width, height))
    assert_error(r, 413, "image_too_large")


def test_several_files_are_refused(client, h):
    files = [("file", ("a.png", image_bytes(), "image/png")), ("file", ("b.png", image_bytes(), "image/png"))]
    r = client.post("/api/v1/media", files=files, headers=h)
    assert_error(r, 400, "malformed_upload")


def test_upload_without_content_length_is_not_read_to_the_end(client, h):
    """A chunked upload (no Content-Length) must be cut off near the limit, not spooled in full."""
    import asyncio

    boundary = b"hrkboundary"
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    chunk = b"\x00" * 65536
    total_chunks = 400  # 26 MB, far above the 200 kB limit
    sent = {"bytes": 0, "chunks": 0}
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if sent["chunks"] == 0:
            sent["chunks"] += 1
            sent["bytes"] += len(head)
            return {"type": "http.request", "body": head, "more_body": True}
        if sent["chunks"] <= total_chunks:
            sent["chunks"] += 1
            sent["bytes"] += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": True}
        if sent["chunks"] == total_chunks + 1:
            sent["chunks"] += 1
            return {"type": "http.request", "body": b"\r\n--" + boundary + b"--\r\n", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"multipart/form-data; boundary=" + boundary),
        (b"transfer-encoding", b"chunked"),
        (b"authorization", h["Authorization"].encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/media",
        "raw_path": b"/api/v1/media",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(client.app(scope, receive, send))
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    assert status == 413
    assert sent["bytes"] < LIMIT + 2 * 1024 * 1024, f"read {sent['bytes']} bytes of an over-limit upload"
