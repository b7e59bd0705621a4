"""huirongke.kit.phone: mainland mobile numbers in, E.164 out, masked for display."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huirongke.kit.phone import InvalidPhone, mask, national, normalize


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+8613800138000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "86 13800138000",
        " 13800138000 ",
        "138 0013 8000",
    ],
)
def test_accepted_forms_normalise_to_e164(raw):
    assert normalize(raw) == "+8613800138000"


@pytest.mark.parametrize(
    "raw",
    ["13012345678", "15912345678", "17712345678", "18612345678", "19912345678", "16612345678", "14712345678"],
)
def test_mainland_mobile_prefixes(raw):
    assert normalize(raw) == "+86" + raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "0",
        "01012345678",
        "+861012345678",
        "02112345678",
        "057112345678",
        "+14155552671",
        "+85261234567",
        "+85366123456",
        "+886912345678",
        "+447911123456",
        "1380013800",
        "138001380001",
        "1380013800a",
        "abcdefghijk",
        "12012345678",
        "11012345678",
        "+86",
        "1" * 33,
        "+8613800138000" + " " * 30,
    ],
)
def test_invalid_numbers(raw):
    with pytest.raises(InvalidPhone):
        normalize(raw)


@pytest.mark.parametrize("raw", [None, 13800138000, b"13800138000", ["13800138000"]])
def test_non_strings_are_invalid(raw):
    with pytest.raises(InvalidPhone):
        normalize(raw)  # type: ignore[arg-type]


def test_invalid_phone_is_a_value_error():
    assert issubclass(InvalidPhone, ValueError)


def test_mask_and_national():
    assert mask("+8613800138000") == "138****8000"
    assert national("+8613800138000") == "13800138000"


@given(st.sampled_from("3456789"), st.integers(min_value=0, max_value=999_999_999))
def test_normalize_is_idempotent_and_agrees_across_forms(second, rest):
    raw = f"1{second}{rest:09d}"
    try:
        e164 = normalize(raw)
    except InvalidPhone:
        return
    assert e164 == "+86" + raw
    assert normalize(e164) == e164
    spaced = f"+86 {raw[:3]} {raw[3:7]} {raw[7:]}"
    assert normalize(spaced) == e164
    masked = mask(e164)
    assert masked == raw[:3] + "****" + raw[-4:]
    assert raw not in masked


@given(st.text(max_size=40))
def test_anything_either_normalises_or_raises_invalid_phone(raw):
    try:
        e164 = normalize(raw)
    except InvalidPhone:
        return
    assert e164.startswith("+861") and len(e164) == 14 and e164[1:].isdigit()
