"""Media storage behind a small interface. The local folder is the embedded default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts


class MediaStorage(Protocol):
    region: str
    #: The third-party facts it declares (the sharing list), or None when the files stay on our servers.
    third_party: ThirdPartyFacts | None

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def ping(self) -> None: ...


class LocalStorage:
    name = "local_media"
    region = MAINLAND  # the folder is on the server, which runs in the PRC (P14)
    third_party: ThirdPartyFacts | None = None  # first-party: nobody else holds the files

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError("storage key escapes the media root")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError("media folder is not writable")
