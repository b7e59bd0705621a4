"""P40: collection through an OS permission stops once the client reports it revoked (or denied),
and starts again after a new `granted` report. The media upload is where the API collects through a
permission today: the client declares `?source=camera|album`."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import auth, sign_up
from huirongke.media.models import Media


@pytest.fixture
def h(client) -> dict[str, str]:
    token, _ = sign_up(client)
    return auth(token)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def upload(client, h, source: str | None):
    params = {"source": source} if source else None
    return client.post(
        "/api/v1/media", params=params, files={"file": ("a.png", _png(), "image/png")}, headers=h
    )


def report(client, h, permission: str, event: str) -> None:
    r = client.post(f"/api/v1/privacy/permissions/{permission}/events", json={"event": event}, headers=h)
    assert r.status_code == 201, r.text


def media_count(ctx) -> int:
    with ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Media)) or 0)


def assert_refused(r, permission: str, state: str) -> None:
    assert r.status_code == 428, r.text
    error = r.json()["error"]
    assert error["code"] == "permission_required"
    assert error["details"]["permission"] == permission
    assert error["details"]["state"] == state


@pytest.mark.parametrize("permission", ["album", "camera"])
@pytest.mark.parametrize("refusal", ["revoked", "denied"])
def test_upload_through_a_revoked_permission_is_refused_until_granted_again(
    client, ctx, h, permission, refusal
):
    report(client, h, permission, "granted")
    assert upload(client, h, permission).status_code == 201
    report(client, h, permission, refusal)
    assert_refused(upload(client, h, permission), permission, refusal)
    assert media_count(ctx) == 1  # nothing was stored for the refused upload
    report(client, h, permission, "granted")
    assert upload(client, h, permission).status_code == 201
    assert media_count(ctx) == 2


def test_a_permission_never_reported_granted_is_refused(client, ctx, h):
    assert_refused(upload(client, h, "camera"), "camera", "unknown")
    assert media_count(ctx) == 0


def test_the_gate_reads_only_the_declared_permission(client, h):
    report(client, h, "album", "granted")
    report(client, h, "camera", "revoked")
    assert upload(client, h, "album").status_code == 201
    assert_refused(upload(client, h, "camera"), "camera", "revoked")


def test_an_upload_that_declares_no_permission_is_not_gated(client, h):
    # A file picker (the web client's) goes through no OS permission, so there is nothing to check.
    report(client, h, "album", "revoked")
    assert upload(client, h, None).status_code == 201


def test_an_unknown_source_is_422(client, h):
    r = upload(client, h, "microphone")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"


def test_the_refusal_is_per_user(client, h):
    report(client, h, "album", "revoked")
    other = auth(sign_up(client, "13900139000")[0])
    report(client, other, "album", "granted")
    assert upload(client, other, "album").status_code == 201
    assert_refused(upload(client, h, "album"), "album", "revoked")
