"""Data export (P29, R06): a generic walk over the data map into a zip of data.json (machine
readable), index.html (readable, in Chinese) and the user's media files."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.db import after_commit
from huirongke.kit.errors import NotFound, RateLimited
from huirongke.kit.jobs import job
from huirongke.privacy import audit, export_html, registry
from huirongke.privacy.keys import SubjectKeyNotFound
from huirongke.privacy.models import DataExport
from huirongke.privacy.registry import Who

log = structlog.get_logger(__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _field_name(c: registry.MappedColumn) -> str:
    """Decrypted columns are exported under their plain name: `name_enc` → `name`."""
    return c.name.removesuffix("_enc") if c.cls.encrypted else c.name


def subject_of(session: Session, user_id: str) -> Who:
    """Every handle the link model knows for a user: the id, and the phone's blind index."""
    from huirongke.accounts.models import User

    user = session.get(User, user_id)
    return Who(user_id=user_id, phone_bidx=user.phone_bidx if user is not None else None)


@dataclass
class _Found:
    """What of one table reaches the subject: rows by primary key, with the columns each may show."""

    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    shown: dict[tuple[Any, ...], set[str]] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)


def _reach(session: Session, who: Who) -> list[tuple[registry.MappedTable, _Found]]:
    """Walk the link model: for each personal table, the rows reaching `who` through any subject, and
    for each row the columns that are the subject's own (another subject's data is not handed out)."""
    out = []
    for t in registry.personal_tables():
        found = _Found()
        pk = [c.name for c in t.table.primary_key.columns]
        for sub in t.subjects:
            where = t.where(sub, who)
            if where is None:
                continue
            own = {c.name for c in t.columns_of(sub)} | {c.name for c in t.columns if not c.cls.personal}
            for row in session.execute(select(t.table).where(where)).mappings():
                key = tuple(row[n] for n in pk)
                found.rows[key] = dict(row)
                found.shown.setdefault(key, set()).update(own)
                found.roles.add(sub.role)
        if found.rows:
            out.append((t, found))
    return out


def _owner(t: registry.MappedTable, row: dict[str, Any]) -> str | None:
    """Whose data key seals the row's encrypted columns."""
    column = t.sealing_owner()
    return row.get(column) if column else None


def collect(ctx: AppContext, session: Session, user_id: str) -> dict[str, Any]:
    """Every declared category of the subject's data, decrypted, keyed by table."""
    who = subject_of(session, user_id)
    ciphers: dict[str, Any] = {}

    def cipher(owner: str | None) -> Any:
        owner = owner or user_id
        if owner not in ciphers:
            try:
                ciphers[owner] = ctx.keys.cipher(session, owner)
            except SubjectKeyNotFound:
                ciphers[owner] = None
        return ciphers[owner]

    categories = []
    for t, found in _reach(session, who):
        out_rows = []
        for key, row in found.rows.items():
            item: dict[str, Any] = {}
            for c in t.columns:
                if not c.cls.exported or c.name not in found.shown[key]:
                    continue
                v = row[c.name]
                if c.cls.encrypted and v is not None:
                    sealer = cipher(_owner(t, row))
                    v = sealer.decrypt(f"{t.name}.{c.name}", v) if sealer else None
                    if v is not None and c.column.info.get("sealed_as") == "json":
                        v = json.loads(v)
                item[_field_name(c)] = _plain(v)
            out_rows.append(item)
        categories.append(
            {
                "table": t.name,
                "label": t.link.label or t.name,
                "roles": sorted(found.roles),
                "fields": {
                    _field_name(c): {
                        "label": c.cls.label or c.name,
                        "category": c.cls.category,
                        "purposes": list(c.cls.purposes),
                        "sensitive": c.cls.sensitive,
                    }
                    for c in t.columns
                    if c.cls.exported and c.cls.personal
                },
                "rows": out_rows,
            }
        )
    return {
        "format": "huirongke-export/1",
        "user_id": user_id,
        "exported_at": utcnow().isoformat(),
        "categories": categories,
    }


def media_keys(session: Session, user_id: str) -> list[str]:
    """The files the subject's own columns name (the same predicate erasure and retention use)."""
    keys: list[str] = []
    for t, found in _reach(session, subject_of(session, user_id)):
        files = [c.name for c in t.file_columns if c.cls.exported]
        for key, row in found.rows.items():
            keys += [row[name] for name in files if name in found.shown[key] and row[name]]
    return keys


def build_archive(ctx: AppContext, session: Session, user_id: str) -> bytes:
    data = collect(ctx, session, user_id)
    keys = media_keys(session, user_id)
    html = export_html.render(data, keys)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        zf.writestr("index.html", html)
        for key in keys:
            if ctx.storage.exists(key):
                zf.writestr(f"media/{key}", ctx.storage.get(key), compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def request_export(ctx: AppContext, session: Session, user_id: str, requested_by: str = "self") -> DataExport:
    now = utcnow()
    interval = timedelta(hours=ctx.settings.export_interval_hours)
    last = session.scalar(
        select(DataExport)
        .where(DataExport.user_id == user_id)
        .order_by(DataExport.created_at.desc())
        .limit(1)
    )
    if last is not None and last.status in ("pending", "running"):
        return last
    if last is not None and last.status != "failed" and interval and now - last.created_at < interval:
        retry = int((last.created_at + interval - now).total_seconds()) + 1
        raise RateLimited(retry, "每 24 小时只能导出一次，请稍后再试或下载已有的导出文件")
    row = DataExport(user_id=user_id, requested_by=requested_by, status="pending", created_at=now)
    session.add(row)
    session.flush()
    audit.record(
        session,
        "export.requested",
        actor_type="user" if requested_by == "self" else requested_by,
        actor_id=user_id if requested_by == "self" else None,
        subject_id=user_id,
        purpose="account",
    )
    export_id = row.id
    after_commit(session, lambda: ctx.jobs.enqueue("privacy.export", export_id))
    return row


@job("privacy.export")
def run_export(ctx: AppContext, export_id: str) -> None:
    with ctx.db.session() as s:
        row = s.get(DataExport, export_id)
        if row is None or row.status not in ("pending", "running"):
            return
        row.status, row.progress = "running", 10
        user_id = row.user_id
    try:
        # Only reads: on SQLite a write session would hold the write lock for the whole build.
        with ctx.db.session(write=False) as s:
            archive = build_archive(ctx, s, user_id)
            sealed = ctx.keys.cipher(s, user_id).seal_bytes(f"export:{export_id}", archive)
        key = f"exports/{export_id}.zip.sealed"
        ctx.storage.put(key, sealed)
    except Exception as exc:
        log.error("export_failed", export_id=export_id, error_type=type(exc).__name__)
        with ctx.db.session() as s:
            row = s.get(DataExport, export_id)
            if row is not None:
                row.status, row.error = "failed", type(exc).__name__
        return
    with ctx.db.session() as s:
        row = s.get(DataExport, export_id)
        if row is None:  # erased meanwhile
            ctx.storage.delete(key)
            return
        now = utcnow()
        row.status, row.progress, row.storage_key, row.size = "ready", 100, key, len(archive)
        row.finished_at, row.expires_at = now, now + timedelta(hours=ctx.settings.export_ttl_hours)
        audit.record(
            s, "export.ready", actor_type="system", actor_id="export", subject_id=user_id, purpose="account"
        )


def get_export(session: Session, user_id: str, export_id: str) -> DataExport:
    row = session.scalar(select(DataExport).where(DataExport.id == export_id, DataExport.user_id == user_id))
    if row is None:
        raise NotFound("找不到该导出记录", code="export_not_found")
    return row


def open_archive(ctx: AppContext, session: Session, row: DataExport, actor: str = "user") -> bytes:
    if row.status != "ready" or not row.storage_key:
        raise NotFound("导出文件尚未生成", code="export_not_ready")
    if row.expires_at is None or row.expires_at <= utcnow() or not ctx.storage.exists(row.storage_key):
        raise NotFound("下载链接已过期，请重新申请导出", code="export_expired")
    cipher = ctx.keys.cipher(session, row.user_id)
    data = cipher.open_bytes(f"export:{row.id}", ctx.storage.get(row.storage_key))
    audit.record(
        session,
        "export.downloaded",
        actor_type=actor,
        actor_id=row.user_id if actor == "user" else None,
        subject_id=row.user_id,
        purpose="account",
    )
    return data
