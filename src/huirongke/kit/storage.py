"""Media storage behind a small interface. The local folder is the embedded default.

Files are written 0600 and folders 0700 (only the service's user reads them), atomically (a `.part`
file renamed into place, removed again when the write fails, e.g. on a full disk)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; tighten it if it exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `path` atomically as a 0600 file; no partial file is left behind on failure."""
    tmp = path.with_name(path.name + ".part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, FILE_MODE)  # an existing .part keeps its mode through O_CREAT
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class MediaStorage(Protocol):
    region: str
    #: The third-party facts it declares (the sharing list), or None when the files stay on our servers.
    third_party: ThirdPartyFacts | None

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def ping(self) -> None: ...
    def keys_older_than(self, cutoff: datetime) -> Iterator[str]:
        """Keys of the stored files last written before `cutoff` (for the orphan job)."""
        ...


class LocalStorage:
    name = "local_media"
    region = MAINLAND  # the folder is on the server, which runs in the PRC (P14)
    third_party: ThirdPartyFacts | None = None  # first-party: nobody else holds the files

    def __init__(self, root: Path) -> None:
        self.root = private_dir(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError("storage key escapes the media root")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        for parent in reversed(path.relative_to(self.root).parents):
            if parent != Path("."):
                private_dir(self.root / parent)
        write_private(path, data)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError("media folder is not writable")

    def keys_older_than(self, cutoff: datetime) -> Iterator[str]:
        limit = cutoff.astimezone(UTC).timestamp()
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                try:
                    if path.stat().st_mtime < limit:
                        yield path.relative_to(self.root).as_posix()
                except FileNotFoundError:
                    continue


def tighten_tree(root: Path) -> int:
    """Make every file under `root` 0600 and every folder 0700 (a data dir an older version wrote
    with 0644 files); return how many were changed. Symlinks are left alone."""
    changed = 0
    for folder, dirs, files in os.walk(root):
        for name, mode in [(d, DIR_MODE) for d in dirs] + [(f, FILE_MODE) for f in files] + [("", DIR_MODE)]:
            path = Path(folder) / name if name else Path(folder)
            try:
                st = path.lstat()
                if not path.is_symlink() and st.st_mode & 0o777 != mode:
                    path.chmod(mode)
                    changed += 1
            except FileNotFoundError:
                continue
    return changed
