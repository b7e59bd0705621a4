"""The link model, proven on tables of the test suite's own, declared the way docs/privacy.md says.

- `proof_contacts`: an agent's imported contact. Two subjects: the agent (a user-id column) and the
  contact, a third party known only by the blind index of their phone.
- `proof_notes`: a note about a contact; it reaches the agent through the contact (one hop).
- `proof_attachments`: a file attached to a note; it reaches the agent through the note and the
  contact (two hops), and names a file in the media store.
- `proof_follows`: a follow; two user subjects, each seeing only their own side of the row.

Each is exported, erased, retained and listed by the engine with no code of its own.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import LargeBinary, MetaData, String, Text, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conftest import auth, sign_up
from huirongke.kit.clock import clock, utcnow
from huirongke.kit.db import NAMING, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy import erasure, lists, registry, retention
from huirongke.privacy.datamap import NOT_PERSONAL, Hop, Subject, SubjectLink, pii
from privacy.privacy_support import OTHER_PHONE, PHONE


class ProofBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ProofContact(ProofBase):
    __tablename__ = "proof_contacts"
    __subject__ = SubjectLink(
        label="测试：导入的联系人",
        subjects=(
            Subject(column="agent_id"),
            Subject(third_party="phone_bidx", role="contact", fate="delete"),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    agent_id: Mapped[str] = mapped_column(String(32), info=pii("user.id", "用户标识", purposes=["profile"]))
    phone_bidx: Mapped[str] = mapped_column(
        String(64),
        info=pii("contact.phone", "联系人手机号（检索索引）", purposes=["profile"], exported=False),
    )
    name: Mapped[str] = mapped_column(
        String(40), info=pii("contact.name", "联系人姓名", purposes=["profile"], retention="P30D")
    )
    card_key: Mapped[str | None] = mapped_column(
        String(128), info=pii("contact.card.file", "名片图片", purposes=["profile"], file=True)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class ProofNote(ProofBase):
    __tablename__ = "proof_notes"
    __subject__ = SubjectLink(
        label="测试：客户跟进记录",
        subjects=(Subject(column="agent_id", via=(Hop("contact_id", "proof_contacts"),)),),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    contact_id: Mapped[str] = mapped_column(
        String(32), info=pii("contact.ref", "所属联系人", purposes=["profile"])
    )
    body: Mapped[str] = mapped_column(Text, info=pii("contact.note", "跟进记录", purposes=["profile"]))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class ProofAttachment(ProofBase):
    __tablename__ = "proof_attachments"
    __subject__ = SubjectLink(
        label="测试：跟进附件",
        subjects=(
            Subject(
                column="agent_id", via=(Hop("note_id", "proof_notes"), Hop("contact_id", "proof_contacts"))
            ),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    note_id: Mapped[str] = mapped_column(
        String(32), info=pii("contact.note.ref", "所属记录", purposes=["profile"])
    )
    file_key: Mapped[str] = mapped_column(
        String(128), info=pii("contact.attachment.file", "附件文件", purposes=["profile"], file=True)
    )
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class ProofFollow(ProofBase):
    __tablename__ = "proof_follows"
    __subject__ = SubjectLink(
        label="测试：关注关系",
        subjects=(
            Subject(column="follower_id", role="follower", fate="delete"),
            Subject(column="followee_id", role="followee", fate="delete"),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    follower_id: Mapped[str] = mapped_column(
        String(32), info=pii("social.follow.follower", "关注者", purposes=["profile"])
    )
    followee_id: Mapped[str] = mapped_column(
        String(32), info=pii("social.follow.followee", "被关注者", purposes=["profile"])
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


CONTACT_PHONE_BIDX_NAME = "contact-13600136000"


@pytest.fixture
def proof(ctx) -> Iterator[None]:
    ProofBase.metadata.create_all(ctx.db.engine)
    with registry.extended(ProofBase):
        yield
    ProofBase.metadata.drop_all(ctx.db.engine)


def _seed(ctx, agent_id: str, other_id: str, contact_bidx: str) -> dict[str, str]:
    now = utcnow()
    ctx.storage.put("proof/card.png", b"card-bytes")
    ctx.storage.put("proof/attach.pdf", b"attachment-bytes")
    with ctx.db.session() as s:
        contact = ProofContact(
            agent_id=agent_id,
            phone_bidx=contact_bidx,
            name="王客户",
            card_key="proof/card.png",
            created_at=now,
        )
        theirs = ProofContact(agent_id=other_id, phone_bidx=contact_bidx, name="王先生", created_at=now)
        s.add_all([contact, theirs])
        s.flush()
        note = ProofNote(contact_id=contact.id, body="约了周三看房", created_at=now)
        their_note = ProofNote(contact_id=theirs.id, body="别人的记录", created_at=now)
        s.add_all([note, their_note])
        s.flush()
        s.add(ProofAttachment(note_id=note.id, file_key="proof/attach.pdf", created_at=now))
        s.add(ProofFollow(follower_id=agent_id, followee_id=other_id, created_at=now))
        s.add(ProofFollow(follower_id=other_id, followee_id=agent_id, created_at=now))
    return {"contact": contact.id, "theirs": theirs.id, "note": note.id}


def _count(ctx, model, *where) -> int:
    with ctx.db.session(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _export(client, token) -> tuple[dict, dict[str, bytes]]:
    r = client.post("/api/v1/me/data-exports", headers=auth(token))
    assert r.status_code == 202, r.text
    r = client.get(f"/api/v1/me/data-exports/{r.json()['id']}/download", headers=auth(token))
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(files["data.json"]), files


def _category(data: dict, table: str) -> dict:
    return next(c for c in data["categories"] if c["table"] == table)


def test_export_follows_every_link_and_shows_each_subject_only_their_side(client, ctx, proof):
    token, me = sign_up(client, PHONE)
    _other_token, other = sign_up(client, OTHER_PHONE)
    _seed(ctx, me["id"], other["id"], CONTACT_PHONE_BIDX_NAME)

    data, files = _export(client, token)
    contacts = _category(data, "proof_contacts")["rows"]
    assert [c["name"] for c in contacts] == ["王客户"]  # not the other agent's contact of the same person
    assert [n["body"] for n in _category(data, "proof_notes")["rows"]] == ["约了周三看房"]  # one hop
    assert [a["file_key"] for a in _category(data, "proof_attachments")["rows"]] == ["proof/attach.pdf"]
    # the files the subject's rows name are in the archive, through the one file predicate
    assert files["media/proof/attach.pdf"] == b"attachment-bytes"
    assert files["media/proof/card.png"] == b"card-bytes"
    follows = _category(data, "proof_follows")
    assert follows["roles"] == ["followee", "follower"]
    # as follower I see whom I follow; as followee, that I am followed, not by whom
    mine = sorted(follows["rows"], key=lambda r: "follower_id" in r)
    assert mine[0] == {"id": mine[0]["id"], "followee_id": me["id"], "created_at": mine[0]["created_at"]}
    assert mine[1]["follower_id"] == me["id"] and mine[1]["followee_id"] == other["id"]


def test_erasure_walks_paths_and_both_sides_of_a_row_and_spares_others(client, ctx, proof):
    token, me = sign_up(client, PHONE)
    _other_token, other = sign_up(client, OTHER_PHONE)
    ids = _seed(ctx, me["id"], other["id"], CONTACT_PHONE_BIDX_NAME)
    r = client.post("/api/v1/me/account-cancellation", headers=auth(token))
    assert r.status_code == 202, r.text
    clock.advance(timedelta(days=8))
    assert erasure.erase_due(ctx) == 1

    assert _count(ctx, ProofContact, ProofContact.agent_id == me["id"]) == 0
    assert _count(ctx, ProofNote, ProofNote.contact_id == ids["contact"]) == 0  # through the contact
    assert _count(ctx, ProofAttachment) == 0  # through the note and the contact
    assert not ctx.storage.exists("proof/attach.pdf") and not ctx.storage.exists("proof/card.png")
    assert _count(ctx, ProofFollow) == 0  # the row went for either of its subjects
    # the other agent's contact and note of the same person are theirs, and stay
    assert _count(ctx, ProofContact, ProofContact.id == ids["theirs"]) == 1
    assert _count(ctx, ProofNote, ProofNote.contact_id == ids["theirs"]) == 1


def test_a_third_party_is_erased_from_every_agent_by_their_own_request(client, ctx, proof):
    _token, me = sign_up(client, PHONE)
    _other_token, other = sign_up(client, OTHER_PHONE)
    _seed(ctx, me["id"], other["id"], CONTACT_PHONE_BIDX_NAME)
    _seed_other = ProofContact(
        agent_id=me["id"], phone_bidx="someone-else", name="李女士", created_at=utcnow()
    )
    with ctx.db.session() as s:
        s.add(_seed_other)
    assert erasure.erase_third_party(ctx, CONTACT_PHONE_BIDX_NAME) == ["proof_contacts"]
    assert _count(ctx, ProofContact, ProofContact.phone_bidx == CONTACT_PHONE_BIDX_NAME) == 0
    assert not ctx.storage.exists("proof/card.png")
    assert _count(ctx, ProofContact) == 1  # someone else's entry stays
    # a user's own erasure never reaches third-party subjects: that step is not in the walk
    assert not any(name.startswith("proof_contacts:1") for name in erasure.step_names())


def test_retention_deletes_rows_and_their_files_after_the_declared_period(client, ctx, proof):
    _token, me = sign_up(client, PHONE)
    _other_token, other = sign_up(client, OTHER_PHONE)
    _seed(ctx, me["id"], other["id"], CONTACT_PHONE_BIDX_NAME)
    clock.advance(timedelta(days=29))
    retention.apply(ctx)
    assert _count(ctx, ProofContact) == 2
    clock.advance(timedelta(days=2))
    results = retention.apply(ctx)
    assert ("proof_contacts", "name", "delete", 2) in {(r.table, r.column, r.action, r.rows) for r in results}
    assert _count(ctx, ProofContact) == 0
    assert not ctx.storage.exists("proof/card.png")


def test_the_collection_list_names_the_new_categories(ctx, proof):
    listed = {e["category"]: e for e in lists.collection_list(ctx.settings)}
    assert listed["contact.name"]["retention"] == "30 天"
    assert "contact.attachment.file" in listed and "social.follow.followee" in listed


def test_writes_to_tables_no_cache_depends_on_keep_the_identity(client, ctx, proof):
    token, me = sign_up(client, PHONE)
    _other_token, other = sign_up(client, OTHER_PHONE)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    hits = ctx.identities.hits
    _seed(ctx, me["id"], other["id"], CONTACT_PHONE_BIDX_NAME)  # a follow, contacts, notes of the user
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert ctx.identities.hits == hits + 1
