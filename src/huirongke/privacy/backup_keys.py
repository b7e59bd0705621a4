"""The data keys of each backup, kept in `keys/backup-keys/`, never in the backup itself.

A backup's database copy holds no data keys: `backup create` moves them (still wrapped by the master
key) into `keys/backup-keys/<backup id>.jsonl`, beside the erasure ledger. Recording an erasure in
the ledger removes the subject's line from every such file, under the ledger's lock, so a backup
taken before someone's erasure holds only ciphertext of them that no key opens any more: the
crypto-shredding reaches the backups too. A restore puts the file's keys back into the restored
database. The files go when their backups are pruned.

Lines: a header `{"format": …, "backup_id": …, "created_at": …}`, then one `{"s": subject id,
"k": wrapped key (base64), "t": created at}` per key. No personal data.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from pathlib import Path

FOLDER = "backup-keys"
FORMAT = "huirongke-backup-keys"

Row = tuple[str, bytes, datetime]


def path_for(keys_dir: Path, backup_id: str) -> Path:
    return keys_dir / FOLDER / f"{backup_id}.jsonl"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a private file (0600, folders 0700) whole or not at all, fsynced with its folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write(data_dir: Path, backup_id: str, created_at: datetime, rows: list[Row]) -> list[Row]:
    """Store a backup's keys, leaving out every subject the ledger names; returns the keys kept."""
    from huirongke.privacy import ledger

    with ledger.locked(data_dir) as held:
        keep = [r for r in rows if r[0] not in held.known]
        header = {"format": FORMAT, "backup_id": backup_id, "created_at": created_at.isoformat()}
        lines = [json.dumps(header)] + [
            json.dumps({"s": s, "k": base64.b64encode(k).decode(), "t": t.isoformat()}, separators=(",", ":"))
            for s, k, t in keep
        ]
        write_atomic(path_for(data_dir / "keys", backup_id), ("\n".join(lines) + "\n").encode())
    return keep


def read(keys_dir: Path, backup_id: str) -> list[Row] | None:
    """The keys stored for a backup, or None if its file is missing."""
    try:
        lines = path_for(keys_dir, backup_id).read_bytes().splitlines()
    except FileNotFoundError:
        return None
    out = []
    for line in lines[1:]:
        doc = json.loads(line)
        out.append((str(doc["s"]), base64.b64decode(doc["k"]), datetime.fromisoformat(doc["t"])))
    return out


def forget(keys_dir: Path, subject_ids: set[str]) -> None:
    """Remove the subjects' keys from every backup's key file (call under the ledger's lock)."""
    folder = keys_dir / FOLDER
    if not subject_ids or not folder.is_dir():
        return
    marks = [f'"s":"{s}"'.encode() for s in subject_ids]
    for path in sorted(folder.glob("*.jsonl")):
        data = path.read_bytes()
        if not any(m in data for m in marks):
            continue
        lines = data.splitlines()
        kept = lines[:1] + [ln for ln in lines[1:] if json.loads(ln)["s"] not in subject_ids]
        write_atomic(path, b"\n".join(kept) + b"\n")


def prune(keys_dir: Path, cutoff: datetime) -> list[str]:
    """Delete the key files of backups taken before `cutoff`; returns their backup ids."""
    folder = keys_dir / FOLDER
    removed = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            with path.open("rb") as f:
                header = json.loads(f.readline())
            taken = datetime.fromisoformat(header["created_at"])
        except (ValueError, KeyError, OSError):
            continue
        if taken < cutoff:
            path.unlink()
            removed.append(str(header["backup_id"]))
    return removed
