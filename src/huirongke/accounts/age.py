"""How old a user is, as far as the service knows (P42, R09).

The facts, in `users`:
- `age_declaration`: the age gate at sign-up, `adult` (the user confirmed being 18 or older) or
  `birth_month` (the year and month, sealed in `birth_month_enc` as "YYYY-MM");
- `birthday_enc` with `birthday_source`: a birthday typed in the profile (`declared`) or taken from the
  ID number of a real-name submission (`id_number`, which no profile edit can change).

The age is computed from the birthday when one is known, else from the declared birth month, counted
from its last day (the youngest the user can be). Nothing is computed by a job: a guardian's powers end,
and a minor's restriction lifts, on the 18th birthday because every check asks again.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from huirongke.accounts import sealed_profile
from huirongke.kit.errors import Conflict, Invalid

if TYPE_CHECKING:
    from huirongke.accounts.models import User
    from huirongke.kit.crypto import FieldCipher

ADULT_AGE = 18  # the policy's own bar, stricter than PIPL's 14 (R09)
BIRTH_MONTH_COLUMN = "users.birth_month_enc"
DECLARED, ID_NUMBER = "declared", "id_number"  # users.birthday_source
ADULT, BIRTH_MONTH = "adult", "birth_month"  # users.age_declaration
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def age_on(birthday: date, today: date) -> int:
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))


def adult_from(birthday: date) -> date:
    """The 18th birthday (a 29 February birthday turns 18 on 1 March in a common year)."""
    try:
        return birthday.replace(year=birthday.year + ADULT_AGE)
    except ValueError:
        return date(birthday.year + ADULT_AGE, 3, 1)


def is_minor_on(birthday: date | None, today: date) -> bool:
    return birthday is not None and age_on(birthday, today) < ADULT_AGE


def restricted_on(birthday: date | None, guardian_consent_at: datetime | None, today: date) -> bool:
    """Under 18 with no guardian's consent: only the profile and the guardian flow are open."""
    return is_minor_on(birthday, today) and guardian_consent_at is None


def parse_birth_month(text: str) -> date | None:
    """ "YYYY-MM" as the first day of that month, or None when it is no month."""
    m = _MONTH.match(text)
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1900:
        return None
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_end(first: date) -> date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def counted_birthday(birthday: date | None, birth_month: date | None) -> date | None:
    """The birthday the age is counted from: the known birthday, else the last day of the declared
    birth month, else None (an account from before the age gate with no birthday: not a minor)."""
    if birthday is not None:
        return birthday
    return month_end(birth_month) if birth_month is not None else None


def declaration(adult: bool | None, birth_month: str | None, today: date) -> tuple[str, date | None]:
    """The age gate of a registration: `("adult", None)` or `("birth_month", first day of the month)`;
    422 `age_required` without one (exactly one of the two), 422 `invalid_birth_month` for a month that
    is not one or lies ahead."""
    if (adult is True) == (birth_month is not None):
        raise Invalid(
            "注册前请确认您已年满 18 周岁，或填写您的出生年月",
            code="age_required",
            details={"accepted": [{"adult": True}, {"birth_month": "YYYY-MM"}]},
        )
    if birth_month is None:
        return ADULT, None
    first = parse_birth_month(birth_month)
    if first is None or first > today:
        raise Invalid("请填写真实的出生年月，例如 2008-05", code="invalid_birth_month")
    return BIRTH_MONTH, first


_CORRECTION = "如填写有误，请在「联系我们」提交更正申请"


def check_birthday_edit(
    source: str | None, birthday: date | None, birth_month: date | None, new: date | None, today: date
) -> None:
    """A birthday typed in the profile never lifts what protects a minor (P42):
    - one taken from an ID number cannot be edited at all (409 `birthday_locked`);
    - while the account is a minor, the new birthday may not make the user older than on record, nor
      be removed: only the same or a later date (for a declared birth month, any day of it or later)
      is taken (409 `minor_birthday_locked`). This holds with a guardian's consent too: it is the
      guardian's powers that would end."""
    if source == ID_NUMBER:
        raise Conflict(
            f"您的生日已根据实名认证的身份证号码确定，不能自行修改；{_CORRECTION}", code="birthday_locked"
        )
    if not is_minor_on(counted_birthday(birthday, birth_month), today):
        return
    floor = birthday if birthday is not None else birth_month
    if new is None or (floor is not None and new < floor):
        raise Conflict(
            f"您未满 18 周岁，生日不能改早或清除；{_CORRECTION}",
            code="minor_birthday_locked",
        )


def check_id_birthday(birthday: date | None, birth_month: date | None, from_id: date, today: date) -> None:
    """An ID number sets the birthday with authority, and restricts a minor at once; but it does not
    turn an account known to be a minor into an adult's: a child could type a parent's number
    (409 `birthday_conflict`, corrected by a case that staff check)."""
    if is_minor_on(counted_birthday(birthday, birth_month), today) and not is_minor_on(from_id, today):
        raise Conflict(
            f"身份证号码中的出生日期与您登记的年龄不符（您登记的年龄未满 18 周岁）；{_CORRECTION}",
            code="birthday_conflict",
        )


def registered_columns(user: User) -> list[str]:
    """The age columns a registration wrote, for its audit event."""
    return ["users.age_declaration"] + (["users.birth_month_enc"] if user.birth_month_enc else [])


def seal_birth_month(cipher: FieldCipher, first: date) -> bytes:
    return cipher.encrypt(BIRTH_MONTH_COLUMN, first.strftime("%Y-%m"))


def open_birth_month(cipher: FieldCipher, blob: bytes | None) -> date | None:
    return None if blob is None else parse_birth_month(cipher.decrypt(BIRTH_MONTH_COLUMN, blob))


def birthday_from_sealed(
    cipher: FieldCipher, birthday_enc: bytes | None, birth_month_enc: bytes | None
) -> date | None:
    """`counted_birthday` from the sealed columns; the birth month is opened only when no birthday is."""
    if birthday_enc is not None:
        return sealed_profile.birthday(cipher, birthday_enc)
    return counted_birthday(None, open_birth_month(cipher, birth_month_enc))
