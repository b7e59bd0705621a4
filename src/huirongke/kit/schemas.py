"""Types shared by request bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Strict

#: The one boolean of request bodies: JSON `true` or `false` only. Pydantic's lax mode would also take
#: "true", "yes", "on", 1 and 0; a switch or a consent must never be read from such a value, so every
#: boolean field of a request body uses this type (tests/kit/test_strict_bool.py checks them all).
Flag = Annotated[bool, Strict()]
