"""The erasure ledger: which subjects have been erased, kept outside every backup.

`HRK_DATA_DIR/keys/erasure-ledger.jsonl`, beside the master key: one JSON line per erased subject
with its pseudonymous user id (a random id that means nothing without the database), the
cancellation id and the time. It holds no personal data. Lines are only ever appended, under an
exclusive lock, and fsynced before the erasure goes on, so a crash cannot lose one.

An erasure is recorded when it *starts* (right after the cancellation is committed as `erasing`, from
which point it can no longer be withdrawn), not when it ends: a backup taken while an erasure was
half done, or a crash part-way through, is then still replayed (see `privacy.replay`). Recording it
twice is harmless; a subject is recorded once.

Every process that can erase (API processes, workers, CLI) must append to the same file: on a
scale-out deployment `keys/` is shared by all hosts, like `keys/master.key`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from huirongke.kit.clock import utcnow
from huirongke.privacy import backup_keys

LEDGER_NAME = "erasure-ledger.jsonl"
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    position: int  # 1-based line number
    user_id: str
    cancellation_id: str | None
    at: datetime


def ledger_path(data_dir: Path) -> Path:
    return data_dir / "keys" / LEDGER_NAME


def _parse(lines: list[bytes]) -> list[Entry]:
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            out.append(
                Entry(n, str(doc["user_id"]), doc.get("cancellation_id"), datetime.fromisoformat(doc["at"]))
            )
        except (ValueError, KeyError, TypeError) as exc:
            # A torn last line cannot happen (one write per line, fsynced); anything else is damage
            # that must be looked at, not skipped: skipping could bring an erased person back.
            raise LedgerDamaged(f"erasure ledger line {n} is unreadable") from exc
    return out


class LedgerDamaged(Exception):
    pass


def entries(data_dir: Path) -> list[Entry]:
    path = ledger_path(data_dir)
    try:
        with path.open("rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            return _parse(f.read().splitlines())
    except FileNotFoundError:
        return []


def position(data_dir: Path) -> int:
    """How many subjects the ledger holds now (backups note it)."""
    return len(entries(data_dir))


def record(data_dir: Path, user_id: str, cancellation_id: str | None) -> bool:
    """Append the subject unless it is already there, and drop its data key from every backup's key
    file (`privacy.backup_keys`); durable on return. True if appended."""
    with locked(data_dir) as ledger:
        appended = ledger.append([(user_id, cancellation_id, utcnow())])
        backup_keys.forget(data_dir / "keys", {user_id})  # also when recorded before: a crash between
    return bool(appended)


def record_many(data_dir: Path, items: list[tuple[str, str | None, datetime]]) -> int:
    """Append every (user id, cancellation id, time) whose subject is not there yet, under one lock
    and one fsync, and drop their keys from the backups' key files; returns how many were appended."""
    with locked(data_dir) as ledger:
        appended = ledger.append(items)
        backup_keys.forget(data_dir / "keys", set(appended))
    return len(appended)


class Locked:
    """The ledger held under its exclusive lock: what it holds, and appending to it."""

    def __init__(self, fd: int, known: set[str]) -> None:
        self._fd = fd
        self.known = known

    def append(self, items: list[tuple[str, str | None, datetime]]) -> list[str]:
        lines, appended = [], []
        for user_id, cancellation_id, at in items:
            if user_id in self.known:
                continue
            self.known.add(user_id)
            appended.append(user_id)
            doc = {"v": FORMAT, "user_id": user_id, "cancellation_id": cancellation_id, "at": at.isoformat()}
            lines.append(json.dumps(doc, separators=(",", ":")) + "\n")
        if lines:
            os.write(self._fd, "".join(lines).encode())
            os.fsync(self._fd)
        return appended


@contextmanager
def locked(data_dir: Path) -> Iterator[Locked]:
    """Hold the ledger's exclusive lock (creating it empty if needed): erasures being recorded and a
    backup writing its key file then never interleave."""
    path = ledger_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            f.seek(0)
            known = {e.user_id for e in _parse(f.read().splitlines())}
        if created:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's name is durable too
            finally:
                os.close(dir_fd)
        yield Locked(fd, known)
    finally:
        os.close(fd)
