"""Mainland mobile numbers: parse any accepted form, return E.164, mask for display."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType


class InvalidPhone(ValueError):
    pass


def normalize(raw: str) -> str:
    """Return the E.164 form of a mainland China mobile number, or raise InvalidPhone."""
    if not isinstance(raw, str) or len(raw) > 32:
        raise InvalidPhone
    try:
        number = phonenumbers.parse(raw, "CN")
    except NumberParseException as exc:
        raise InvalidPhone from exc
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        raise InvalidPhone
    if phonenumbers.number_type(number) not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidPhone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def national(e164: str) -> str:
    return e164.removeprefix("+86")


def mask(e164: str) -> str:
    """138****8000: the form shown to anyone but the owner."""
    n = national(e164)
    return f"{n[:3]}****{n[-4:]}"
