"""A real age gate (P42, R09; issue 8, part 2).

- Registration asks for `{"adult": true}` or `{"birth_month": "YYYY-MM"}`, else 422 `age_required`; a
  returning user sends none.
- A birth month under 18 makes a minor, restricted until a guardian consents.
- A real-name submission's ID number sets the birthday with authority and restricts a minor at once.
- Editing the birthday never lifts what an ID number or a guardian's consent established.
"""

from __future__ import annotations

import calendar
import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from conftest import auth, latest_code, sign_up
from huirongke.accounts.models import User
from huirongke.accounts.profile import review_real_name
from huirongke.kit.clock import china_today, clock
from huirongke.kit.idcard import checksum_char
from huirongke.privacy.models import AuditEvent
from privacy.privacy_support import (
    GUARDIAN_PHONE,
    ID_NUMBER,
    PHONE,
    assert_error,
    export_and_download,
    grant,
    rows,
    unzip,
    years_ago,
)


def register(client, age: Any = None, phone: str = PHONE, code: str | None = None):
    if code is None:
        assert client.post("/api/v1/auth/sms-codes", json={"phone": phone}).status_code == 202
        code = latest_code(client, phone)
    body: dict[str, Any] = {
        "phone": phone,
        "code": code,
        "accept_policy_version": client.get("/api/v1/privacy/policy").json()["version"],
    }
    if age is not None:
        body["age"] = age
    return client.post("/api/v1/auth/sessions", json=body)


def month_of(day: date) -> str:
    return day.strftime("%Y-%m")


def id_number_born(born: date) -> str:
    first17 = f"110105{born:%Y%m%d}002"
    return first17 + checksum_char(first17)


def user_row(ctx, user_id: str) -> User:
    with ctx.db.session(write=False) as s:
        row = s.get(User, user_id)
        assert row is not None
        s.expunge(row)
        return row


def consent_as_guardian(client, token: str) -> None:
    h = auth(token)
    r = client.post("/api/v1/me/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}, headers=h)
    assert r.status_code == 202, r.text
    body = {"guardian_phone": GUARDIAN_PHONE, "code": latest_code(client, GUARDIAN_PHONE)}
    r = client.post("/api/v1/me/guardian/consent", json=body, headers=h)
    assert r.status_code == 201, r.text


def submit_id(client, token: str, number: str):
    return client.post(
        "/api/v1/me/real-name", json={"name": "王小明", "id_number": number}, headers=auth(token)
    )


# --- the declaration at registration -------------------------------------------------------------


@pytest.mark.parametrize(
    "age",
    [None, {}, {"adult": False}, {"adult": None}, {"adult": True, "birth_month": "2000-01"}],
    ids=["absent", "empty", "adult-false", "adult-null", "both"],
)
def test_registration_needs_an_age_declaration(client, ctx, age):
    r = register(client, age)
    err = assert_error(r, 422, "age_required")
    assert "18" in err["message"] and "出生年月" in err["message"]
    assert rows(ctx, "SELECT id FROM users") == []
    # the code was not burnt: the client asks and retries with it
    r = register(client, {"adult": True}, code=latest_code(client, PHONE))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("month", ["2000-13", "2000-00", "2000-1", "20001", "1899-12", "abcd-ef"])
def test_a_birth_month_must_be_one(client, ctx, month):
    assert_error(register(client, {"birth_month": month}), 422, "invalid_birth_month")
    assert rows(ctx, "SELECT id FROM users") == []


def test_a_birth_month_ahead_is_refused(client):
    ahead = month_of(china_today().replace(day=1) + timedelta(days=32))
    assert_error(register(client, {"birth_month": ahead}), 422, "invalid_birth_month")


@pytest.mark.parametrize(
    "age", [{"adult": "true"}, {"adult": 1}, {"birth_month": 200001}, {"adult": True, "x": 1}]
)
def test_a_malformed_declaration_is_422(client, age):
    assert_error(register(client, age), 422, "validation_error")


def test_a_returning_user_sends_none(client):
    _token, user = sign_up(client)
    clock.advance(timedelta(seconds=61))
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    r = client.post("/api/v1/auth/sessions", json={"phone": PHONE, "code": latest_code(client, PHONE)})
    assert r.status_code == 201, r.text
    assert r.json()["user"]["id"] == user["id"]


def test_an_adult_declaration_is_recorded_and_unrestricted(client, ctx):
    r = register(client, {"adult": True})
    assert r.status_code == 201, r.text
    token, user_id = r.json()["token"], r.json()["user"]["id"]
    row = user_row(ctx, user_id)
    assert (row.age_declaration, row.birth_month_enc, row.birthday_source) == ("adult", None, None)
    assert client.get("/api/v1/me/sessions", headers=auth(token)).status_code == 200
    with ctx.db.session(write=False) as s:
        e = s.scalars(select(AuditEvent).where(AuditEvent.action == "account.registered")).one()
        assert "users.age_declaration" in e.fields


def test_a_birth_month_under_18_makes_a_restricted_minor(client, ctx):
    month = month_of(years_ago(16))
    r = register(client, {"birth_month": month})
    assert r.status_code == 201, r.text
    token, user_id = r.json()["token"], r.json()["user"]["id"]
    assert_error(client.get("/api/v1/me/sessions", headers=auth(token)), 403, "guardian_consent_required")
    g = client.get("/api/v1/me/guardian", headers=auth(token)).json()
    assert g["minor"] is True and g["restricted"] is True
    # kept sealed, like the birthday: the month is nowhere in clear
    row = user_row(ctx, user_id)
    assert row.age_declaration == "birth_month" and row.birth_month_enc
    assert month.encode() not in row.birth_month_enc
    assert r.json()["user"]["birthday"] is None  # a month is no birthday


def test_a_birth_month_counts_from_its_last_day(client):
    """Born some day of the month 18 years ago: an adult only once the whole month could have passed."""
    today = china_today()
    r = register(client, {"birth_month": month_of(years_ago(18))})
    token = r.json()["token"]
    last_day = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    assert client.get("/api/v1/me/guardian", headers=auth(token)).json()["minor"] is (today < last_day)
    r = register(client, {"birth_month": month_of(years_ago(19))}, phone="13900139000")
    assert client.get("/api/v1/me/sessions", headers=auth(r.json()["token"])).status_code == 200


def test_the_birth_month_is_exported_and_erased_with_the_account(client, ctx):
    month = month_of(years_ago(30))
    r = register(client, {"birth_month": month})
    token, user_id = r.json()["token"], r.json()["user"]["id"]
    _, archive = export_and_download(client, token)
    data = json.loads(unzip(archive)["data.json"])
    text = json.dumps(data, ensure_ascii=False)
    assert month in text and "出生年月" in text and "注册时的年龄声明" in text
    assert client.post("/api/v1/me/account-cancellation", headers=auth(token)).status_code == 202
    from huirongke.privacy import erasure

    clock.advance(timedelta(days=ctx.settings.cancellation_cooling_off_days, minutes=1))
    assert erasure.erase_due(ctx) == 1
    row = user_row(ctx, user_id)
    assert row.status == "erased"
    assert (row.age_declaration, row.birth_month_enc, row.birthday_source) == (None, None, None)


# --- the ID number sets the birthday with authority ----------------------------------------------


def test_an_id_number_sets_the_birthday_and_restricts_a_minor_at_once(client, ctx):
    token, user = sign_up(client)  # declared an adult
    grant(client, token, "real_name")
    born = years_ago(16) - timedelta(days=3)
    r = submit_id(client, token, id_number_born(born))
    assert r.status_code == 201, r.text
    assert_error(client.get("/api/v1/me/sessions", headers=auth(token)), 403, "guardian_consent_required")
    assert client.get("/api/v1/me", headers=auth(token)).json()["birthday"] == born.isoformat()
    assert user_row(ctx, user["id"]).birthday_source == "id_number"


def test_an_id_birthday_cannot_be_edited(client, ctx):
    token, _user = sign_up(client)
    grant(client, token, "real_name")
    assert submit_id(client, token, ID_NUMBER).status_code == 201
    for birthday in (years_ago(30).isoformat(), years_ago(10).isoformat(), None):
        r = client.patch("/api/v1/me", json={"birthday": birthday}, headers=auth(token))
        err = assert_error(r, 409, "birthday_locked")
        assert "身份证" in err["message"]
    assert client.get("/api/v1/me", headers=auth(token)).json()["birthday"] == "1949-12-31"
    # the same date is no change, and other fields stay editable
    r = client.patch("/api/v1/me", json={"birthday": "1949-12-31", "nickname": "小王"}, headers=auth(token))
    assert r.status_code == 200, r.text


def test_a_refused_id_number_no_longer_locks_the_birthday(client, ctx):
    token, user = sign_up(client)
    grant(client, token, "real_name")
    assert submit_id(client, token, ID_NUMBER).status_code == 201
    with ctx.db.session() as s:
        review_real_name(s, user["id"], approve=False, note="照片不清晰")
    assert user_row(ctx, user["id"]).birthday_source == "declared"
    r = client.patch("/api/v1/me", json={"birthday": "1980-01-02"}, headers=auth(token))
    assert r.status_code == 200, r.text


# --- editing the birthday never lifts a minor's protection ---------------------------------------


def test_a_declared_minor_cannot_edit_themselves_into_an_adult(client):
    first = years_ago(16).replace(day=1)
    r = register(client, {"birth_month": month_of(first)})
    token = r.json()["token"]
    h = auth(token)
    for birthday in (years_ago(30).isoformat(), (first - timedelta(days=1)).isoformat()):
        r = client.patch("/api/v1/me", json={"birthday": birthday}, headers=h)
        err = assert_error(r, 409, "minor_birthday_locked")
        assert "18" in err["message"]
    assert_error(client.get("/api/v1/me/sessions", headers=h), 403, "guardian_consent_required")
    # a day of the declared month, or a later one, is taken (still a minor, still restricted)
    r = client.patch("/api/v1/me", json={"birthday": (first + timedelta(days=9)).isoformat()}, headers=h)
    assert r.status_code == 200, r.text
    r = client.patch("/api/v1/me", json={"birthday": (first + timedelta(days=2)).isoformat()}, headers=h)
    assert_error(r, 409, "minor_birthday_locked")  # now the birthday is the floor
    r = client.patch("/api/v1/me", json={"birthday": None}, headers=h)
    assert_error(r, 409, "minor_birthday_locked")  # nor can it be removed
    assert_error(client.get("/api/v1/me/sessions", headers=h), 403, "guardian_consent_required")


def test_a_guardians_consent_cannot_be_shed_by_editing_the_birthday(client):
    """With a guardian's consent the minor is unrestricted, but still a minor: a new birthday would end
    the guardian's powers."""
    r = register(client, {"birth_month": month_of(years_ago(16))})
    token = r.json()["token"]
    consent_as_guardian(client, token)
    r = client.patch("/api/v1/me", json={"birthday": years_ago(30).isoformat()}, headers=auth(token))
    assert_error(r, 409, "minor_birthday_locked")
    g = client.get("/api/v1/me/guardian", headers=auth(token)).json()
    assert g["minor"] is True and g["guardian_active"] is True


def test_an_id_number_does_not_turn_a_known_minor_into_an_adult(client):
    """A child could type a parent's number: the conflict goes to a correction case, not through."""
    r = register(client, {"birth_month": month_of(years_ago(16))})
    token = r.json()["token"]
    consent_as_guardian(client, token)
    grant(client, token, "real_name")
    r = submit_id(client, token, ID_NUMBER)
    assert_error(r, 409, "birthday_conflict")
    assert client.get("/api/v1/me/guardian", headers=auth(token)).json()["minor"] is True


def test_an_adult_may_correct_a_typed_birthday(client):
    token, _ = sign_up(client)
    h = auth(token)
    assert client.patch("/api/v1/me", json={"birthday": "1990-05-01"}, headers=h).status_code == 200
    assert client.patch("/api/v1/me", json={"birthday": "1991-06-02"}, headers=h).status_code == 200
    assert client.patch("/api/v1/me", json={"birthday": None}, headers=h).status_code == 200
