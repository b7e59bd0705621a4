"""Resident ID numbers (GB 11643-1999): 17 digits and a checksum digit or X."""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"^[1-9]\d{16}[\dX]$")


def checksum_char(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalize(raw: str) -> str | None:
    """Return the canonical upper-case number if it is well formed and its checksum holds."""
    value = raw.strip().upper() if isinstance(raw, str) else ""
    if not _SHAPE.match(value):
        return None
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
    return value if checksum_char(value[:17]) == value[17] else None


def mask(value: str) -> str:
    return f"{value[:3]}{'*' * 11}{value[-4:]}"


def birth_date(value: str) -> date:
    """The date of birth a normalized number carries (digits 7–14)."""
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
