"""The residue scan: proof that nothing of an erased subject is left anywhere we keep data.

It searches every column of every table, the raw SQLite files (WAL included), the media store,
the job store and the log files for every written form of the phone number and any given strings.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from huirongke.context import AppContext
from huirongke.kit.crypto import DecryptionError
from huirongke.kit.phone import national, normalize
from huirongke.privacy import registry
from huirongke.privacy.keys import SubjectKeyNotFound

CHUNK = 64 * 1024 * 1024
_FORMS = 3  # encodings searched for each string: UTF-8, UTF-16-LE, JSON-escaped


@dataclass(frozen=True)
class Hit:
    where: str  # "db:users.nickname", "file:/path", "redis:key"
    needle_index: int


def phone_forms(raw: str) -> list[str]:
    """Every way a mainland number is commonly written."""
    e164 = normalize(raw)
    n = national(e164)
    spaced = f"{n[:3]} {n[3:7]} {n[7:]}"
    dashed = f"{n[:3]}-{n[3:7]}-{n[7:]}"
    return list(
        dict.fromkeys(
            [
                n,
                e164,
                "86" + n,
                "0086" + n,
                f"+86 {n}",
                f"+86 {spaced}",
                spaced,
                dashed,
                f"+86-{dashed}",
            ]
        )
    )


def _needles(strings: Iterable[str]) -> list[bytes]:
    out: list[bytes] = []
    for s in strings:
        if not s:
            continue
        out.append(s.encode("utf-8"))
        out.append(s.encode("utf-16-le"))  # how some drivers and tools store text
        escaped = json.dumps(s)[1:-1].encode()  # JSON written with ensure_ascii: "\u738b..."
        out.append(escaped if escaped != s.encode() else s.encode("utf-8"))
    return out


def scan_file(path: Path, needles: list[bytes]) -> set[int]:
    """Indexes of the needles found in a file, searched in overlapping windows of an mmap (no copies)."""
    unique = list(dict.fromkeys(needles))
    found: set[bytes] = set()
    size = path.stat().st_size
    if size:
        overlap = max(len(n) for n in unique)
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos = 0
            while pos < size and len(found) < len(unique):
                end = min(size, pos + CHUNK + overlap)
                for n in unique:
                    if n not in found and mm.find(n, pos, end) != -1:
                        found.add(n)
                pos += CHUNK
    return {i for i, n in enumerate(needles) if n in found}


_SEP = b"\x00\x1f\x00\x1e\x00"  # joins values of a batch; no needle contains it
_BATCH = 20_000


def _scan_tables(ctx: AppContext, needles: list[bytes]) -> list[Hit]:
    """Every column of every table: one plain SELECT per table, values of each column joined per
    batch and searched once per needle; a batch is searched value by value only after a hit."""
    hits: list[Hit] = []
    by_needle: dict[bytes, list[int]] = {}  # an ASCII string's forms coincide: search each once
    for i, n in enumerate(needles):
        by_needle.setdefault(n, []).append(i)
    quote = ctx.db.engine.dialect.identifier_preparer.quote
    with ctx.db.engine.connect() as conn:
        for t in registry.tables():
            names = [c.name for c in t.columns]
            cur = conn.exec_driver_sql(f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(t.name)}")
            found: set[tuple[str, int]] = set()
            while rows := cur.fetchmany(_BATCH):
                for j, name in enumerate(names):
                    blobs = [
                        v if isinstance(v, bytes | bytearray | memoryview) else str(v).encode("utf-8")
                        for v in (r[j] for r in rows)
                        if v is not None
                    ]
                    joined = _SEP.join(bytes(b) for b in blobs)
                    for n, indexes in by_needle.items():
                        if (name, indexes[0]) not in found and n in joined:
                            for i in indexes:
                                found.add((name, i))
                                hits.append(Hit(f"db:{t.name}.{name}", i))
    return hits


def _scan_sealed(ctx: AppContext, needles: list[bytes], first: int) -> list[Hit]:
    """Sealed columns are opaque to a byte search, not to whoever holds the master key: every sealed
    value whose subject still has a data key is opened and searched (a shredded key leaves noise).
    Only needles from `first` on: a phone number is legitimately sealed for whoever holds it now (a
    new account on the same number, a guardian), so phones are searched in clear only."""
    hits: list[Hit] = []
    with ctx.db.session(write=False) as session:
        for t in registry.personal_tables():
            sealed = [c for c in t.columns if c.cls.encrypted]
            owner = t.sealing_owner()
            if not sealed or owner is None:
                continue
            query = select(t.table.c[owner], *(t.table.c[c.name] for c in sealed))
            for subject_id, *values in session.execute(query):
                try:
                    cipher = ctx.keys.cipher(session, subject_id)
                except SubjectKeyNotFound:
                    continue
                for c, value in zip(sealed, values, strict=True):
                    if value is None:
                        continue
                    try:
                        plain = cipher.decrypt(f"{t.name}.{c.name}", bytes(value)).encode()
                    except DecryptionError:
                        continue
                    hits += [
                        Hit(f"db:{t.name}.{c.name}", i)
                        for i, n in enumerate(needles)
                        if i >= first and n in plain
                    ]
    return hits


def _files(root: Path) -> Iterator[Path]:
    if not root.exists():
        return
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                yield p


def scan(ctx: AppContext, phone: str | None, texts: Iterable[str]) -> list[Hit]:
    phones = phone_forms(phone) if phone else []
    strings = phones + [t for t in texts if t]
    if not strings:
        return []
    needles = _needles(strings)
    hits: list[Hit] = []

    # 1. Every column of every table, through the database itself.
    hits += _scan_tables(ctx, needles)
    hits += _scan_sealed(ctx, needles, first=len(_needles(phones)))

    # 2. Raw files: SQLite database + WAL + job store, media, logs, everything under the data dir.
    roots = [ctx.settings.data_dir.resolve()]
    media = ctx.settings.media_dir.resolve()
    if not any(media == r or r in media.parents for r in roots):
        roots.append(media)
    db_url = ctx.db.url
    if db_url.startswith("sqlite:///"):
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for extra in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-journal")):
            if extra.exists() and not any(r in extra.resolve().parents for r in roots):
                hits += [Hit(f"file:{extra}", i) for i in scan_file(extra, needles)]
    for root in roots:
        for path in _files(root):
            if path.name == "master.key":
                continue
            hits += [Hit(f"file:{path}", i) for i in scan_file(path, needles)]

    # 3. The Redis job store / cache, when one is used.
    if ctx.redis is not None:
        for key in ctx.redis.scan_iter("*"):
            try:
                kind = ctx.redis.type(key)
                if kind == b"string":
                    blobs = [ctx.redis.get(key) or b""]
                elif kind == b"list":
                    blobs = ctx.redis.lrange(key, 0, -1)
                elif kind == b"hash":
                    blobs = list(ctx.redis.hgetall(key).values())
                elif kind == b"zset":
                    blobs = ctx.redis.zrange(key, 0, -1)
                elif kind == b"set":
                    blobs = list(ctx.redis.smembers(key))
                else:
                    blobs = []
            except Exception:
                continue
            for blob in [key, *blobs]:
                for i, n in enumerate(needles):
                    if n in blob:
                        hits.append(Hit(f"redis:{key.decode(errors='replace')}", i))
    return hits


def describe(hits: list[Hit], strings_count: int) -> list[str]:
    """Hit locations without the needle itself (the report must not repeat personal data)."""
    return sorted({f"{h.where} (检索项 #{h.needle_index // _FORMS + 1})" for h in hits})
