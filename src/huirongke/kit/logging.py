"""structlog JSON logs. A redaction step removes phone numbers, ID numbers and tokens from every
event, whatever key or message they hide in, so a careless log call cannot leak them. The log file
rotates daily (and by size), and a failed write is counted, never raised."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import MutableMapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

from huirongke.kit.clock import utcnow

_ID_NUMBER = re.compile(r"(?<!\d)[1-9]\d{16}[\dXx](?!\d)")
# A mainland mobile number with any prefix (+86, 0086, 86) and any separators between digits.
_SEP = r"[\s.\-()]*"
_PHONE = re.compile(rf"(?<!\d)(?:(?:\+|00)?86{_SEP})?\(?1[3-9]\d\)?(?:{_SEP}\d){{8}}(?!\d)")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_SECRET_KEYS = {"token", "authorization", "code", "password", "phone", "id_number", "secret", "cookie"}


# Full-width digits and plus (１３８…, ＋８６) are accepted as phone input, so they are folded first.
_FULLWIDTH = {0xFF10 + i: ord("0") + i for i in range(10)} | {0xFF0B: ord("+")}


def redact_text(value: str) -> str:
    value = value.translate(_FULLWIDTH)
    value = _BEARER.sub("Bearer [REDACTED]", value)
    value = _ID_NUMBER.sub("[ID]", value)
    return _PHONE.sub("[PHONE]", value)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: "[REDACTED]" if str(k).lower() in _SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = "[REDACTED]" if key.lower() in _SECRET_KEYS else _redact(event[key])
    return event


class RotatingLogFile:
    """The log file as a text stream that never raises into its caller (a full disk must not break a
    response). It rotates at UTC midnight and when the next line would take it past `max_bytes`: the
    live file is renamed `<name>.<YYYY-MM-DD>` (`.1`, `.2`, … when a day has several), and the
    retention job deletes rotated files past their period (`privacy.stores.prune_logs`).

    Lines are buffered until their newline, then written with one unbuffered write. A failed open,
    rename or write is counted in `errors`, the line is dropped, and the next line tries again."""

    def __init__(self, path: Path, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.errors = 0
        self._fh: Any = None
        self._day: date | None = None
        self._size = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def write(self, data: str) -> int:
        with self._lock:
            self._pending.append(data)
            if "\n" in data:
                self._write_pending()
        return len(data)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._write_pending()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _write_pending(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self._pending.clear()
        try:
            today = utcnow().date()
            if self._fh is None:
                self._open(today)
            if self._day != today or (self._size and self._size + len(data) > self.max_bytes):
                self._rotate()
                self._open(today)
            self._fh.write(data)
            self._size += len(data)
        except Exception:
            self.errors += 1
            self._close()  # reopen (and look at the file afresh) on the next line

    def _open(self, today: date) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # logs name user ids
        self._fh = os.fdopen(fd, "ab", buffering=0)
        st = os.fstat(self._fh.fileno())
        self._size = st.st_size
        # A file left by an earlier run belongs to the day it was last written.
        self._day = datetime.fromtimestamp(st.st_mtime, UTC).date() if st.st_size else today

    def _rotate(self) -> None:
        self._close()
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        day = self._day or utcnow().date()
        target = self.path.with_name(f"{self.path.name}.{day.isoformat()}")
        n = 0
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.{day.isoformat()}.{n}")
        self.path.rename(target)

    def _close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(Exception):
                fh.close()


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log file at `path` (`<name>.<YYYY-MM-DD>[.<n>]`), not the live one."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if _ROTATED.fullmatch(p.name.removeprefix(path.name)))


_ROTATED = re.compile(r"\.\d{4}-\d{2}-\d{2}(?:\.\d+)?")


class _Tee:
    """Writes each line to the console and to the log file; a stream that fails is counted, never
    raised (logging must not break the request that logs)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams
        self.errors = 0

    def write(self, data: str) -> int:
        for s in self.streams:
            try:
                s.write(data)
            except Exception:
                self.errors += 1
        return len(data)

    def flush(self) -> None:
        for s in self.streams:
            try:
                s.flush()
            except Exception:
                self.errors += 1


_current_sink: _Tee | None = None


_dropped = 0


def count_dropped() -> None:
    """A log call that raised (its caller swallowed it): counted in `write_errors`."""
    global _dropped
    _dropped += 1


def write_errors() -> int:
    """How many log writes failed (console or file), or log calls raised, since logging was last
    configured."""
    sink = _current_sink
    if sink is None:
        return _dropped
    files = sum(s.errors for s in sink.streams if isinstance(s, RotatingLogFile))
    return sink.errors + files + _dropped


def configure_logging(
    level: str = "INFO", stream: Any = None, file: Path | None = None, max_bytes: int = 50 * 1024 * 1024
) -> None:
    global _current_sink, _dropped
    previous = _current_sink
    _dropped = 0
    streams: list[Any] = [stream or sys.stderr]
    if file is not None:
        streams.append(RotatingLogFile(file, max_bytes))
    sink = _current_sink = _Tee(*streams)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
        structlog.processors.JSONRenderer(ensure_ascii=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, sink)),
        cache_logger_on_first_use=False,
    )
    # Route the stdlib (uvicorn, alembic, huey) through a redacting formatter as well.
    handler = logging.StreamHandler(sink)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs paths without query strings
    # httpx logs every outbound URL at INFO, query string included (an SMS API's takes the phone).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if previous is not None:
        for s in previous.streams:
            if isinstance(s, RotatingLogFile):
                s.close()


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
