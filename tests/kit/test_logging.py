"""huirongke.kit.logging: redaction of phone numbers, ID numbers and bearer tokens (R10)."""

from __future__ import annotations

import unicodedata

import pytest

from huirongke.kit.idcard import checksum_char
from huirongke.kit.logging import redact_processor, redact_text
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
