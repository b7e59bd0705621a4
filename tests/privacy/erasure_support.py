"""Shared checks for the cancellation and erasure tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from privacy_support import (
    ID_NUMBER,
    OTHER_PHONE,
    PHONE,
    REAL_NAME,
    export_and_download,
    rich_user,
)
from sqlalchemy import select

from conftest import auth, sign_up
from huirongke.privacy import erasure
from huirongke.privacy.models import AccountCancellation, DataExport, DataKey
from huirongke.privacy.residue import scan

NICK, REGION, TAG = "林小满", "思明区莲前东路", "金牌经纪X9"
CASE_TEXT = "请问我的资料如何被使用？"
NEEDLES = [NICK, ID_NUMBER, REGION, TAG, REAL_NAME]


def step_names() -> list[str]:
    """The erasure steps, as the erasure walks the data map."""
    return erasure.step_names()


@dataclass
class Subject:
    token: str
    me: dict[str, Any]
    other_token: str
    other: dict[str, Any]
    files: list[str]  # storage keys of the subject's media and export archive


def make_subject(client: Any, ctx: Any, *, other: bool = True) -> Subject:
    """A subject with data in every category the API offers, an export archive, and a bystander."""
    other_token, other_me = sign_up(client, OTHER_PHONE) if other else ("", {})
    if other:
        r = client.patch("/api/v1/me", json={"nickname": "旁观者老周"}, headers=auth(other_token))
        assert r.status_code == 200
    token, me = rich_user(client, nickname=NICK, region=REGION, tag=TAG)
    export_and_download(client, token)
    files = [me["avatar_url"].removeprefix("/media/")]
    with ctx.db.session() as s:
        files += [
            k for k in s.scalars(select(DataExport.storage_key).where(DataExport.user_id == me["id"])) if k
        ]
    assert len(files) == 2
    for key in files:
        assert ctx.storage.exists(key)
    return Subject(token, me, other_token, other_me, files)


def cancellation_id(ctx: Any, user_id: str) -> str:
    with ctx.db.session() as s:
        cid = s.scalar(select(AccountCancellation.id).where(AccountCancellation.user_id == user_id))
    assert cid
    return str(cid)


def assert_erased(client: Any, ctx: Any, subj: Subject) -> None:
    user_id = subj.me["id"]
    # the token is dead
    r = client.get("/api/v1/me", headers=auth(subj.token))
    assert r.status_code == 401, r.text
    # nothing of the subject is left anywhere: tables, raw DB files, media, job store, logs
    hits = scan(ctx, PHONE, NEEDLES)
    assert hits == [], hits
    # media files and the export archive are gone; the data key is shredded
    for key in subj.files:
        assert not ctx.storage.exists(key), key
    with ctx.db.session() as s:
        assert s.get(DataKey, user_id) is None
        c = s.scalar(select(AccountCancellation).where(AccountCancellation.user_id == user_id))
        assert c is not None and c.status == "erased" and c.completed_at is not None
    # others see a tombstone
    if subj.other_token:
        r = client.get(f"/api/v1/users/{user_id}", headers=auth(subj.other_token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["nickname"] == "已注销用户"
        assert (
            body["avatar_url"] is None and body["tags"] == [] and "phone" not in body and "region" not in body
        )
        # ... and the bystander is untouched
        me = client.get("/api/v1/me", headers=auth(subj.other_token))
        assert me.status_code == 200 and me.json()["nickname"] == "旁观者老周"
        assert scan(ctx, None, ["旁观者老周"]) != []


def assert_phone_is_free(client: Any, old_id: str) -> None:
    """After erasure the number registers a brand-new, empty account."""
    token, user = sign_up(client, PHONE)
    assert user["id"] != old_id
    me = client.get("/api/v1/me", headers=auth(token)).json()
    assert me["phone"] == "+8613800138000"
    assert me["nickname"] is None and me["region"] is None and me["tags"] == [] and me["avatar_url"] is None
    assert me["real_name"] is None and me["birthday"] is None and me["gender"] is None
    assert client.get("/api/v1/me/cases", headers=auth(token)).json() == []
    assert client.get("/api/v1/me/account-cancellation", headers=auth(token)).json() is None
    consents = client.get("/api/v1/privacy/consents", headers=auth(token)).json()
    assert not any(c["granted"] for c in consents)
