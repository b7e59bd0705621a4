"""structlog JSON logs. A redaction step removes phone numbers, ID numbers and tokens from every
event, whatever key or message they hide in, so a careless log call cannot leak them."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

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


class _Tee:
    """Writes each line to the console and to the log file."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, data: str) -> int:
        for s in self.streams:
            s.write(data)
        return len(data)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def configure_logging(level: str = "INFO", stream: Any = None, file: Path | None = None) -> None:
    stream = stream or sys.stderr
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        stream = _Tee(stream, file.open("a", encoding="utf-8", buffering=1))
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
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Route the stdlib (uvicorn, alembic, huey) through a redacting formatter as well.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs paths without query strings


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
