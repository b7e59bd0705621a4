"""Files 0600 and folders 0700 under the data dir (issue 8): SQLite files, keys, media, the job store
and the logs are readable by the service's user only, and `serve` tightens a data dir an older
version left 0644."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit.logging import configure_logging
from huirongke.kit.storage import tighten_tree
from huirongke.migrate import upgrade


@pytest.fixture
def default_umask() -> Iterator[None]:
    """Start as a server would, with the usual 022 umask (an earlier test may have set 077)."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def _loose(root: Path) -> list[str]:
    """Everything under `root` (itself included) that the group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_everything_the_service_writes_under_the_data_dir_is_private(tmp_path: Path, default_umask) -> None:
    settings = Settings(env="dev", data_dir=tmp_path / "data", log_level="INFO")
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url)
    ctx = build_context(settings)  # the job store is a SQLite file in the data dir, as in `serve`
    try:
        with TestClient(create_app(ctx=ctx, log_to_file=True)) as client:
            token, _ = sign_up(client)
            out = io.BytesIO()
            Image.new("RGB", (32, 32), (1, 2, 3)).save(out, format="PNG")
            h = auth(token)
            files = {"file": ("a.png", out.getvalue(), "image/png")}
            r = client.post("/api/v1/media", files=files, headers=h)
            assert r.status_code == 201, r.text
            assert client.patch("/api/v1/me", json={"nickname": "林小满"}, headers=h).status_code == 200
            ctx.jobs.pending()
    finally:
        configure_logging("WARNING")
        ctx.db.dispose()
    data = settings.data_dir
    names = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    # the walk covers what matters: the database, the master key, an image, the job store, the log
    assert {"huirongke.db", "keys/master.key", "jobs.db", "logs/huirongke.log"} <= names
    assert any(n.startswith("media/img/") for n in names)
    assert _loose(data) == []


def test_serve_tightens_a_data_dir_an_older_version_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "media" / "img").mkdir(parents=True, mode=0o755)
    for path in (data, data / "media", data / "media" / "img"):
        path.chmod(0o755)
    (data / "huirongke.db").write_bytes(b"x")
    (data / "media" / "img" / "a.jpg").write_bytes(b"x")
    for path in data.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    (data / "link").symlink_to("/etc/hostname")  # left alone
    assert _loose(data)
    assert tighten_tree(data) == 5
    assert _loose(data) == [f"data/link {oct(stat.S_IMODE((data / 'link').lstat().st_mode))}"]
    assert stat.S_IMODE(Path("/etc/hostname").stat().st_mode) & 0o044  # the link's target untouched
