"""Shared pieces of the browser tests: a real `huirongke serve` process, Debian's Chromium through
Playwright at 375×812, and the steps a user takes (agree, sign in) or an operator runs (publish a
policy). The test modules wrap these in thin fixtures.

Screenshots go to tmp_path; set HRK_WEB_SCREENSHOTS=docs/img to also refresh the README images.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import _empty, missing_service
from huirongke.config import Settings
from huirongke.context import build_context

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 375, "height": 812}
CODE = re.compile(r"(\d{6})")


# ---------------------------------------------------------------------------------------------
# A real server


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    cwd: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def cli_result(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "huirongke.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cli(self, *args: str) -> str:
        result = self.cli_result(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a dev-mode server: nothing inherited from HRK_*, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HRK_")}
    env.update(HRK_ENV="dev", HRK_DATA_DIR=str(data_dir), HRK_LOG_LEVEL="WARNING", HRK_HOST="127.0.0.1")
    env.update(extra)
    return env


@contextmanager
def running_server(cwd: Path, env: dict[str, str], *, jobs: bool = False) -> Iterator[Server]:
    """`huirongke serve` on a free port until the block ends. jobs=True runs the job consumer in
    the process (exports, erasure); otherwise it is started with --no-jobs."""
    port = _free_port()
    log_path = cwd / f"server-{port}.log"
    args = [sys.executable, "-m", "huirongke.cli", "serve", "--port", str(port)]
    if not jobs:
        args.append("--no-jobs")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    pytest.fail("server exited early:\n" + log_path.read_text(errors="replace"))
                try:
                    if httpx.get(base_url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("server not ready after 90 s:\n" + log_path.read_text(errors="replace"))
                time.sleep(0.2)
            yield Server(base_url, env, cwd)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_for_test(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, *, jobs: bool = False, **extra: str
) -> Iterator[Server]:
    """A server for one test. On PostgreSQL it shares the session database, which the ctx fixture
    empties before the test."""
    data_dir = tmp_path / "data"
    env = server_env(data_dir, **extra)
    if backend == "postgres":
        ctx = request.getfixturevalue("ctx")
        env["HRK_DATABASE_URL"] = str(ctx.settings.database_url)
        if ctx.settings.redis_url:
            env["HRK_REDIS_URL"] = str(ctx.settings.redis_url)
        env["HRK_DATA_DIR"] = str(ctx.settings.data_dir)
    with running_server(tmp_path, env, jobs=jobs) as server:
        yield server


def shared_server(
    request: pytest.FixtureRequest, backend: str, tmp: Path, *, jobs: bool = False, **extra: str
) -> Iterator[Server]:
    """A server shared by a module's tests (each uses its own phone numbers). On PostgreSQL it uses
    the session database, emptied once here."""
    env = server_env(tmp / "data", **extra)
    if backend == "postgres":
        database_url = request.getfixturevalue("database_url")
        redis_url = request.getfixturevalue("redis_url")
        settings = Settings(
            env="dev",
            data_dir=tmp / "data",
            database_url=database_url,
            redis_url=redis_url,
            log_level="WARNING",
        )
        ctx = build_context(settings)
        _empty(ctx)
        ctx.db.dispose()
        env["HRK_DATABASE_URL"] = str(database_url)
        if redis_url:
            env["HRK_REDIS_URL"] = str(redis_url)
    with running_server(tmp, env, jobs=jobs) as server:
        yield server


# ---------------------------------------------------------------------------------------------
# A mobile-sized browser page


@contextmanager
def launched_browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing_service("Chromium not installed at /usr/bin/chromium")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    page: Page
    requests: list[tuple[str, str]]  # (method, url) of every request, in order
    problems: list[str]  # uncaught errors and CSP violations


@contextmanager
def opened_tab(browser: Browser) -> Iterator[Tab]:
    """A fresh phone-sized browser context; fails the test on any page error or CSP violation."""
    context = browser.new_context(
        viewport=VIEWPORT, device_scale_factor=2, locale="zh-CN", is_mobile=True, has_touch=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    t = Tab(page, [], [])
    page.on("request", lambda r: t.requests.append((r.method, r.url)))
    page.on("pageerror", lambda e: t.problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            t.problems.append(f"console: {m.text}")
            if m.type == "error" and "Content Security Policy" in m.text
            else None
        ),
    )
    yield t
    context.close()
    assert not t.problems, t.problems


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    """Screenshot the viewport (toast hidden) to tmp_path, and to $HRK_WEB_SCREENSHOTS if set."""
    page.locator("#toast").evaluate("el => el.classList.remove('is-visible')")
    page.wait_for_timeout(350)  # let transitions settle
    path = tmp_path / name
    page.screenshot(path=str(path))
    copy_to = os.environ.get("HRK_WEB_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copy_to) / name)
    return path


def api_paths(requests: list[tuple[str, str]]) -> list[str]:
    return [f"{m} {urlsplit(u).path}" for m, u in requests if urlsplit(u).path.startswith("/api/")]


def make_avatar(path: Path) -> Path:
    """A friendly 256×256 PNG portrait drawn with Pillow."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256))
    draw = ImageDraw.Draw(img)
    for y in range(256):  # a soft vertical gradient
        draw.line([(0, y), (255, y)], fill=(255 - y // 6, 196 - y // 5, 120 + y // 4))
    draw.ellipse((40, 160, 216, 336), fill=(36, 78, 160))  # shoulders
    draw.ellipse((84, 56, 172, 150), fill=(255, 221, 190))  # face
    draw.chord((80, 44, 176, 120), 180, 360, fill=(40, 32, 30))  # hair
    img.save(path, format="PNG")
    return path


# ---------------------------------------------------------------------------------------------
# What users and operators do


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def agree_on_first_visit(t: Tab, server: Server) -> None:
    page = t.page
    page.goto(server.base_url + "/")
    expect(page.locator("#policy-dialog")).to_be_visible()
    page.get_by_role("button", name="同意并继续").click()
    expect(page.locator("#login-phone")).to_be_visible()


def request_and_fill_code(page: Page, phone: str) -> None:
    page.locator("#login-phone").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#send-code")).to_have_text(re.compile(r"\d+ 秒后重发"))
    page.get_by_role("button", name="从开发发件箱填入").click()
    expect(page.locator("#login-code")).to_have_value(re.compile(r"^\d{6}$"))


def outbox_code(server: Server, phone: str, contains: str = "") -> str:
    """The newest code texted to `phone` (whose text contains `contains`), from the dev outbox."""
    with server.api() as c:
        deadline = time.monotonic() + 10
        while True:
            messages = c.get("/api/v1/dev/sms-outbox", params={"phone": phone}).json()["messages"]
            hit = next((m for m in messages if contains in m["text"]), None)
            if hit:
                match = CODE.search(hit["text"])
                assert match
                return match.group(1)
            assert time.monotonic() < deadline, "no code in the dev outbox"
            time.sleep(0.1)  # the text is written just after the 202 goes out


def sign_up_over_http(server: Server, phone: str, age: dict[str, Any] | None = None) -> str:
    """Register `phone` over HTTP (declared an adult unless `age` says otherwise); the token."""
    with server.api() as c:
        assert c.post("/api/v1/auth/sms-codes", json={"phone": phone}).status_code == 202
        code = outbox_code(server, phone, "登录")
        version = c.get("/api/v1/privacy/policy").json()["version"]
        r = c.post(
            "/api/v1/auth/sessions",
            json={
                "phone": phone,
                "code": code,
                "accept_policy_version": version,
                "age": age or {"adult": True},
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


def signed_in(t: Tab, server: Server, phone: str, path: str = "/me") -> str:
    """Agree in the browser, register `phone` over HTTP, and open `path` signed in. Returns the token."""
    agree_on_first_visit(t, server)
    token = sign_up_over_http(server, phone)
    t.page.evaluate("t => localStorage.setItem('hrk.token', t)", token)
    t.page.goto(f"{server.base_url}/#{path}")
    return token


def publish_policy(server: Server, tmp_path: Path, changes: str) -> int:
    with server.api() as c:
        before = c.get("/api/v1/privacy/policy").json()
    source = tmp_path / f"policy-{before['version'] + 1}.md"
    source.write_text(before["text"] + "\n\n## 补充说明\n\n- " + changes + "\n", encoding="utf-8")
    server.cli("privacy", "publish-policy", str(source), "--changes", changes)
    deadline = time.monotonic() + 10
    with server.api() as c:  # the server caches the current version for a moment
        while c.get("/api/v1/privacy/policy").json()["version"] == before["version"]:
            assert time.monotonic() < deadline, "new policy version never became current"
            time.sleep(0.2)
    return int(before["version"]) + 1


def wait_for_export(
    server: Server, token: str, export_id: str, path: str = "/api/v1/me/data-exports"
) -> dict[str, Any]:
    with server.api() as c:
        deadline = time.monotonic() + 30
        while True:
            row = c.get(f"{path}/{export_id}", headers=auth(token)).json()
            if row["status"] in ("ready", "failed"):
                return dict(row)
            assert time.monotonic() < deadline, row
            time.sleep(0.2)


def export_over_http(server: Server, token: str) -> dict[str, Any]:
    """Request an export through the API, wait for it and return the parsed data.json."""
    with server.api() as c:
        r = c.post("/api/v1/me/data-exports", headers=auth(token))
        assert r.status_code == 202, r.text
        row = wait_for_export(server, token, r.json()["id"])
        assert row["status"] == "ready", row
        data = c.get(row["download_url"], headers=auth(token))
        assert data.status_code == 200, data.text
    with zipfile.ZipFile(io.BytesIO(data.content)) as zf:
        return dict(json.loads(zf.read("data.json")))


def zip_names(path: Path | str) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()
