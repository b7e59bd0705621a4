"""huirongke.kit.idcard: GB 11643-1999 resident ID numbers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huirongke.kit.idcard import checksum_char, mask, normalize

# Known-good examples (the checksum of the published GB 11643 sample and friends).
KNOWN = ["11010519491231002X", "440524188001010014", "11010119900307803X", "110101199003070759"]

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
regions = st.integers(min_value=100000, max_value=999999)
sequences = st.integers(min_value=0, max_value=999)


def first17(region: int, born: date, seq: int) -> str:
    return f"{region}{born:%Y%m%d}{seq:03d}"


@pytest.mark.parametrize("number", KNOWN)
def test_known_numbers(number):
    assert checksum_char(number[:17]) == number[17]
    assert normalize(number) == number


def test_checksum_alphabet():
    # weights and the 11-cycle: every check character can appear
    seen = {checksum_char(f"11010519491231{i:03d}") for i in range(1000)}
    assert seen == set("0123456789X")


@given(regions, dates, sequences)
def test_any_17_digits_with_computed_checksum_validate(region, born, seq):
    head = first17(region, born, seq)
    number = head + checksum_char(head)
    assert normalize(number) == number
    assert normalize(number.lower()) == number
    assert normalize(f"  {number}  ") == number


@given(regions, dates, sequences, st.sampled_from("0123456789X"))
def test_a_changed_check_digit_fails(region, born, seq, replacement):
    head = first17(region, born, seq)
    right = checksum_char(head)
    if replacement == right:
        replacement = "0" if right != "0" else "1"
    assert normalize(head + replacement) is None


@given(
    regions, dates, sequences, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9)
)
def test_a_changed_body_digit_fails(region, born, seq, position, delta):
    head = first17(region, born, seq)
    number = head + checksum_char(head)
    changed = list(number)
    changed[position] = str((int(changed[position]) + delta) % 10)
    # a single-digit error always changes the checksum (the weights are all invertible mod 11)
    assert normalize("".join(changed)) is None


@given(st.text(max_size=25))
def test_anything_else_is_none_or_well_formed(raw):
    result = normalize(raw)
    if result is not None:
        assert len(result) == 18 and result[:17].isdigit() and checksum_char(result[:17]) == result[17]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1101051949123100",  # 16
        "11010519491231002",  # 17
        "11010519491231002XX",  # 19
        "01010519491231002X",  # leading zero
        "1101051949123100ZX",
        "110105194913310020",  # month 13
        "110105194902300028",  # 30 February
        "110105194912320023",  # day 32
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    ],
)
def test_malformed_numbers(raw):
    assert normalize(raw) is None


@pytest.mark.parametrize("raw", [None, 110105194912310020, b"11010519491231002X"])
def test_non_strings(raw):
    assert normalize(raw) is None  # type: ignore[arg-type]


def test_impossible_dates_fail_even_with_a_right_checksum():
    for head in ["11010519491332002", "11010519490230002", "11010519490000002"]:
        assert normalize(head + checksum_char(head)) is None


def test_leap_day():
    head = "11010520000229001"
    assert normalize(head + checksum_char(head)) is not None
    head = "11010519000229001"
    assert normalize(head + checksum_char(head)) is None


def test_mask():
    assert mask("11010519491231002X") == "110" + "*" * 11 + "002X"
    assert len(mask("11010519491231002X")) == 18


def test_future_birth_dates_are_still_well_formed_numbers():
    born = date.today() + timedelta(days=365)
    head = first17(110105, born, 1)
    assert normalize(head + checksum_char(head)) == head + checksum_char(head)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_any_17_digits_validate_exactly_when_well_formed(head):
    number = head + checksum_char(head)
    try:
        date(int(head[6:10]), int(head[10:12]), int(head[12:14]))
        plausible = head[0] != "0"
    except ValueError:
        plausible = False
    assert (normalize(number) == number) is plausible
    if plausible:
        wrong = "0" if number[17] != "0" else "1"
        assert normalize(head + wrong) is None
