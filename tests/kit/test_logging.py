"""huirongke.kit.logging: redaction of phone numbers, ID numbers and bearer tokens (R10); the log
file's rotation and its write errors."""

from __future__ import annotations

import io
import logging
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from huirongke.kit.clock import clock, utcnow
from huirongke.kit.idcard import checksum_char
from huirongke.kit.logging import (
    RotatingLogFile,
    configure_logging,
    redact_processor,
    redact_text,
    rotated_files,
    write_errors,
)
from huirongke.kit.phone import InvalidPhone, normalize

ID17 = "11010519491231002"
ID_NUMBER = ID17 + checksum_char(ID17)


@pytest.mark.parametrize(
    "phone",
    [
        "13800138000",
        "+8613800138000",
        "8613800138000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "138 0013 8000",
        "138-0013-8000",
        "86 13800138000",
        "19912345678",
    ],
)
def test_phones_in_every_form(phone):
    for template in ["{}", "call {} now", "phone={}", "电话：{}。", '{{"phone": "{}"}}', "a,{},b"]:
        text = template.format(phone)
        out = redact_text(text)
        assert phone not in out, out
        digits = "".join(c for c in phone if c.isdigit())[-11:]
        assert digits not in "".join(c for c in out if c.isdigit())
        assert "[PHONE]" in out


# Forms a client might send. Whatever kit.phone.normalize accepts as a phone number can reach a log
# line (an exception message, a careless debug call), so the redactor must recognise it too.
CANDIDATE_FORMS = [
    "13800138000",
    "+8613800138000",
    "+86 138 0013 8000",
    "8613800138000",
    "138 0013 8000",
    "138-0013-8000",
    "+86-138-0013-8000",
    "008613800138000",
    "138.0013.8000",
    "+86.138.0013.8000",
    "(138) 0013 8000",
    "+86 (138) 0013-8000",
    "+86 1380 0138 000",
    "1380-0138-000",
    "138 00 13 80 00",
    "138 001 38000",
    "13800 138000",
    "\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10",  # full-width digits
    "+\uff18\uff16\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10",
]


@pytest.mark.parametrize("form", CANDIDATE_FORMS)
def test_every_phone_form_the_api_accepts_is_redacted(form):
    try:
        normalize(form)
    except InvalidPhone:
        return  # the API refuses it, so it is never a user's phone number in our system
    out = redact_text(f"sign-in failed for {form} (retry)")
    ascii_digits = "".join(str(unicodedata.digit(c)) for c in out if unicodedata.digit(c, None) is not None)
    assert "13800138000" not in ascii_digits, (
        f"{form!r} is accepted as a phone but survives redaction: {out!r}"
    )


def test_id_numbers():
    for value in [ID_NUMBER, ID_NUMBER.lower(), "11010519491231002X", "110105194912310029"]:
        out = redact_text(f"id={value};")
        assert value not in out
        assert "[ID]" in out


def test_bearer_tokens():
    for token in ["abc.def-ghi_jkl", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "x/y+z=="]:
        for prefix in ["Bearer ", "bearer ", "BEARER  ", "Authorization: Bearer "]:
            out = redact_text(f"{prefix}{token} end")
            assert token not in out
            assert "[REDACTED]" in out
            assert out.endswith(" end")


def test_text_without_personal_data_is_untouched():
    for text in [
        "signed_in",
        "user_id=agrcc6ent5ukowgvpiqsjrf6",
        "ms=12.5 status=200",
        "2025-01-01T00:00:00Z",
        "count 1380",
        "order 12345678",
        "bear with me",
    ]:
        assert redact_text(text) == text


def test_longer_digit_runs_are_not_split_into_a_phone():
    # a 20-digit order number is not a phone number; the redactor must not eat part of it
    assert redact_text("order 12345678901234567890") == "order 12345678901234567890"


def test_processor_redacts_secret_keys_and_nested_values():
    event = {
        "event": "login 13800138000",
        "phone": "anything",
        "Token": "t0k3n",
        "code": "123456",
        "password": "secret123",
        "nested": {"id_number": ID_NUMBER, "note": "call +86 138 0013 8000", "list": ["13900139000", 5]},
        "count": 3,
    }
    out = redact_processor(None, "info", dict(event))
    assert out["phone"] == out["Token"] == out["code"] == out["password"] == "[REDACTED]"
    assert out["nested"]["id_number"] == "[REDACTED]"
    assert "13800138000" not in out["event"]
    assert "138 0013 8000" not in out["nested"]["note"]
    assert out["nested"]["list"][0] == "[PHONE]"
    assert out["nested"]["list"][1] == 5
    assert out["count"] == 3


# --- the log file: rotation, and write errors that never reach the caller (R10, issue 7 part 6) ---


@pytest.fixture
def noon():
    """Today at 12:00 UTC, so no real midnight passes during the test."""
    now = utcnow()
    clock.advance(now.replace(hour=12, minute=0, second=0, microsecond=0) - now)
    yield
    clock.reset()


def test_log_file_rotates_at_utc_midnight(tmp_path, noon):
    path = tmp_path / "logs" / "huirongke.log"
    sink = RotatingLogFile(path)
    first_day = utcnow().date()
    sink.write('{"event": "first"}\n')
    clock.advance(timedelta(hours=12))
    sink.write('{"event": "second"}\n')
    sink.close()
    rotated = path.with_name(f"huirongke.log.{first_day.isoformat()}")
    assert rotated.read_text() == '{"event": "first"}\n'
    assert path.read_text() == '{"event": "second"}\n'
    assert rotated_files(path) == [rotated]


def test_log_file_rotates_by_size(tmp_path, noon):
    path = tmp_path / "huirongke.log"
    sink = RotatingLogFile(path, max_bytes=30)
    for n in range(3):
        sink.write(f'{{"event": "line {n}"}}\n')  # 20 bytes each: one line per file
    sink.close()
    day = utcnow().date().isoformat()
    assert [p.name for p in rotated_files(path)] == [f"huirongke.log.{day}", f"huirongke.log.{day}.1"]
    assert path.read_text() == '{"event": "line 2"}\n'


def test_rotated_files_are_only_the_rotated_ones(tmp_path):
    path = tmp_path / "huirongke.log"
    names = ["huirongke.log", "huirongke.log.2026-01-02", "huirongke.log.2026-01-02.3"]
    names += ["other.log.2026-01-02", "huirongke.log.bak", "huirongke.log.2026-01-02.gz"]
    for name in names:
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in rotated_files(path)] == ["huirongke.log.2026-01-02", "huirongke.log.2026-01-02.3"]


def test_a_full_disk_is_counted_never_raised():
    # /dev/full answers every write with ENOSPC, as a full disk does.
    sink = RotatingLogFile(Path("/dev/full"))
    assert sink.write('{"event": "lost"}\n') == len('{"event": "lost"}\n')
    sink.flush()
    assert sink.errors == 1


def test_a_log_path_that_cannot_be_opened_is_counted_never_raised(tmp_path):
    (tmp_path / "not-a-dir").write_text("a file where the log directory should be")
    sink = RotatingLogFile(tmp_path / "not-a-dir" / "huirongke.log")
    sink.write("one\n")
    sink.write("two\n")
    assert sink.errors == 2


def test_logging_through_structlog_and_stdlib_survives_a_failing_file():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, file=Path("/dev/full"))
    try:
        structlog.get_logger("test").info("still_logged", n=1)
        logging.getLogger("stdlib").warning("also logged")
        assert write_errors() == 2
    finally:
        configure_logging("WARNING")
    assert '"event": "still_logged"' in stream.getvalue()  # the console still has it
    assert "also logged" in stream.getvalue()
