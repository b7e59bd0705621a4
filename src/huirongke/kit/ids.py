"""Opaque, roughly time-ordered identifiers that don't reveal counts."""

from __future__ import annotations

import base64
import os
import time


def new_id() -> str:
    raw = int(time.time() * 1000).to_bytes(6, "big") + os.urandom(9)
    return base64.b32encode(raw).decode().lower().rstrip("=")
