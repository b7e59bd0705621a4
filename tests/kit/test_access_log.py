"""The access log names route templates, never raw paths (issue 7 part 6), and a log file that
cannot be written never breaks a response."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import auth, sign_up
from huirongke.app import create_app
from huirongke.kit.logging import configure_logging, write_errors
from huirongke.kit.middleware import UNMATCHED


@pytest.fixture
def log_stream(client):
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    yield stream
    configure_logging("WARNING")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_another_users_id_in_the_path_is_nowhere_in_the_log(client, log_stream):
    reader_token, reader = sign_up(client, "13800138000")
    _, other = sign_up(client, "13900139000")
    log_stream.truncate(0)
    log_stream.seek(0)
    r = client.get(f"/api/v1/users/{other['id']}", headers=auth(reader_token))
    assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/no-such-route/{other['id']}", headers=auth(reader_token))
    assert r.status_code == 404
    assert other["id"] not in log_stream.getvalue()
    requests = [line for line in _lines(log_stream) if line["event"] == "request"]
    assert [(line["method"], line["path"], line["status"]) for line in requests] == [
        ("GET", "/api/v1/users/{user_id}", 200),
        ("GET", UNMATCHED, 404),
    ]
    assert requests[0]["user_id"] == reader["id"]  # the acting user, by id only


def test_a_media_key_is_not_logged(client, log_stream):
    r = client.get("/media/some/secret-capability-key.jpg")
    assert r.status_code == 404
    assert "secret-capability-key" not in log_stream.getvalue()
    paths = [line["path"] for line in _lines(log_stream) if line["event"] == "request"]
    assert paths == ["/media/{key:path}"]


def test_a_full_disk_does_not_break_a_response(ctx):
    ctx.settings.log_level = "INFO"
    ctx.settings.log_file = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk
    try:
        with TestClient(create_app(ctx=ctx, log_to_file=True)) as c:
            before = write_errors()
            r = c.get("/api/v1/privacy/policy")
            assert r.status_code == 200
            assert write_errors() > before
    finally:
        configure_logging("WARNING")


def test_an_error_log_names_the_route_not_the_path(ctx, log_stream):
    app = create_app(ctx=ctx)

    def boom(user_id: str) -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/test-boom/{user_id}", boom)
    configure_logging("INFO", stream=log_stream)  # create_app configured logging afresh
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/api/v1/test-boom/agrsomeoneelse0000000000").status_code == 500
    assert "agrsomeoneelse" not in log_stream.getvalue()
    errors = [line for line in _lines(log_stream) if line["event"] == "unhandled_error"]
    assert [line["path"] for line in errors] == ["/api/v1/test-boom/{user_id}"]
