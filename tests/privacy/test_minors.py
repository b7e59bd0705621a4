"""Minors (P42, R09): under 18, the service is restricted until a guardian's consent is verified by an
SMS code to the guardian's phone; the guardian, without an account, can then get the child's data or
ask for its deletion."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from privacy_support import (
    GUARDIAN_PHONE,
    OTHER_PHONE,
    PHONE,
    assert_error,
    code_in,
    count,
    outbox,
    set_china_date,
    unzip,
    years_ago,
)
from sqlalchemy import select

from conftest import auth, latest_code, sign_up
from huirongke.kit.clock import china_today, clock
from huirongke.privacy.models import AuditEvent, GuardianConsent
from huirongke.privacy.residue import phone_forms, scan

RESTRICTED = [
    ("GET", "/api/v1/me/sessions", None),
    ("GET", "/api/v1/me/devices", None),
    ("GET", "/api/v1/me/privacy-settings", None),
    ("PATCH", "/api/v1/me/privacy-settings", {"show_region": True}),
    ("GET", "/api/v1/me/real-name", None),
    ("GET", "/api/v1/users/{other}", None),
    ("POST", "/api/v1/media", None),
]


def make_minor(client, age: int = 17) -> tuple[str, dict]:
    token, user = sign_up(client)
    r = client.patch(
        "/api/v1/me", json={"birthday": years_ago(age).isoformat(), "nickname": "小明"}, headers=auth(token)
    )
    assert r.status_code == 200, r.text
    return token, user


def consent_as_guardian(client, token) -> None:
    r = client.post(
        "/api/v1/me/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}, headers=auth(token)
    )
    assert r.status_code == 202, r.text
    code = latest_code(client, GUARDIAN_PHONE)
    r = client.post(
        "/api/v1/me/guardian/consent",
        json={"guardian_phone": GUARDIAN_PHONE, "code": code},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    assert r.json()["restricted"] is False


def guardian_code(client) -> str:
    clock.advance(timedelta(seconds=61))
    r = client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE})
    assert r.status_code == 202, r.text
    return latest_code(client, GUARDIAN_PHONE)


@pytest.mark.parametrize(("method", "path", "body"), RESTRICTED, ids=[f"{m} {p}" for m, p, _ in RESTRICTED])
def test_a_17_year_old_is_restricted(client, method, path, body, ctx):
    _, other = sign_up(client, OTHER_PHONE)
    token, _ = make_minor(client)
    r = client.request(method, path.format(other=other["id"]), json=body, headers=auth(token))
    assert_error(r, 403, "guardian_consent_required")


def test_what_a_minor_can_do_before_consent(client):
    token, _ = make_minor(client)
    me = client.get("/api/v1/me", headers=auth(token))
    assert me.status_code == 200
    assert client.patch("/api/v1/me", json={"nickname": "小明同学"}, headers=auth(token)).status_code == 200
    g = client.get("/api/v1/me/guardian", headers=auth(token)).json()
    assert {k: g[k] for k in ("minor", "restricted", "guardian_consented_at", "guardian_phone")} == {
        "minor": True,
        "restricted": True,
        "guardian_consented_at": None,
        "guardian_phone": None,
    }
    assert client.get("/api/v1/privacy/policy").status_code == 200
    # the rights channels stay open to everyone
    assert client.get("/api/v1/me/cases", headers=auth(token)).status_code == 200
    assert client.delete("/api/v1/auth/sessions/current", headers=auth(token)).status_code == 204


def test_an_adult_is_not_restricted_on_the_18th_birthday(client):
    token, _ = make_minor(client, age=18)
    assert client.get("/api/v1/me/sessions", headers=auth(token)).status_code == 200
    assert client.get("/api/v1/me/guardian", headers=auth(token)).json()["minor"] is False


def test_no_birthday_means_no_restriction(client):
    token, _ = sign_up(client)
    assert client.get("/api/v1/me/sessions", headers=auth(token)).status_code == 200


def test_guardian_consent_lifts_the_restriction(client, ctx):
    token, user = make_minor(client)
    assert_error(
        client.post("/api/v1/me/guardian/sms-codes", json={"guardian_phone": PHONE}, headers=auth(token)),
        422,
        "guardian_phone_is_own",
    )
    assert_error(
        client.post(
            "/api/v1/me/guardian/sms-codes", json={"guardian_phone": "+86 138 0013 8000"}, headers=auth(token)
        ),
        422,
        "guardian_phone_is_own",
    )
    r = client.post(
        "/api/v1/me/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}, headers=auth(token)
    )
    assert r.status_code == 202
    # a wrong code does nothing
    r = client.post(
        "/api/v1/me/guardian/consent",
        json={"guardian_phone": GUARDIAN_PHONE, "code": "999999"},
        headers=auth(token),
    )
    if latest_code(client, GUARDIAN_PHONE) != "999999":
        assert_error(r, 400, "invalid_code")
    assert client.get("/api/v1/me/sessions", headers=auth(token)).status_code == 403
    # the right code does
    code = latest_code(client, GUARDIAN_PHONE)
    r = client.post(
        "/api/v1/me/guardian/consent",
        json={"guardian_phone": GUARDIAN_PHONE, "code": code},
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    assert r.json()["restricted"] is False and r.json()["guardian_consented_at"]
    assert client.get("/api/v1/me/sessions", headers=auth(token)).status_code == 200
    # the guardian's number is kept encrypted, never in the clear
    with ctx.db.session() as s:
        row = s.scalars(select(GuardianConsent)).one()
        assert row.user_id == user["id"]
    assert scan(ctx, GUARDIAN_PHONE, []) == []
    with ctx.db.session() as s:
        e = s.scalars(select(AuditEvent).where(AuditEvent.action == "guardian.consented")).one()
        assert e.subject_id == user["id"] and e.actor_type == "guardian"
        for form in phone_forms(GUARDIAN_PHONE):
            assert form not in str(e.fields)


def test_the_users_own_code_does_not_count_as_the_guardians(client):
    token, _ = make_minor(client)
    clock.advance(timedelta(seconds=61))
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    own = latest_code(client, PHONE)
    r = client.post(
        "/api/v1/me/guardian/consent",
        json={"guardian_phone": GUARDIAN_PHONE, "code": own},
        headers=auth(token),
    )
    assert_error(r, 400, "invalid_code")
    r = client.post(
        "/api/v1/me/guardian/consent", json={"guardian_phone": PHONE, "code": own}, headers=auth(token)
    )
    assert_error(r, 422, "guardian_phone_is_own")


def test_guardian_gets_the_childs_data(client, ctx):
    token, child = make_minor(client)
    consent_as_guardian(client, token)
    code = guardian_code(client)
    r = client.post(
        "/api/v1/guardian/requests", json={"guardian_phone": GUARDIAN_PHONE, "code": code, "kind": "export"}
    )
    assert r.status_code == 202, r.text
    [result] = r.json()
    assert result["child_id"] == child["id"] and result["nickname"] == "小明"
    assert result["export_id"] and result["download_token"]
    export_id, dl_token = result["export_id"], result["download_token"]

    status = client.get(f"/api/v1/guardian/exports/{export_id}", headers={"X-Guardian-Token": dl_token})
    assert status.status_code == 200 and status.json()["status"] == "ready"
    assert status.json()["download_url"] == f"/api/v1/guardian/exports/{export_id}/download"

    url = f"/api/v1/guardian/exports/{export_id}/download"
    assert_error(client.get(url, headers={"X-Guardian-Token": "wrong"}), 401, "invalid_guardian_token")
    assert_error(client.get(url, headers={"X-Guardian-Token": dl_token[:-1] + "x"}), 401)
    # no X-Guardian-Token header: no credentials, so 401 like any missing token (not a 422)
    assert_error(client.get(url), 401, "invalid_guardian_token")
    assert_error(client.get(f"/api/v1/guardian/exports/{export_id}"), 401, "invalid_guardian_token")
    # the child's own bearer token is no guardian token, and the guardian's is no bearer token
    assert_error(client.get(url, headers={"X-Guardian-Token": token[:64]}), 401)
    assert_error(
        client.get(
            f"/api/v1/me/data-exports/{export_id}/download", headers={"Authorization": f"Bearer {dl_token}"}
        ),
        401,
    )

    r = client.get(url, headers={"X-Guardian-Token": dl_token})
    assert r.status_code == 200, r.text
    files = unzip(r.content)
    assert "data.json" in files and "小明".encode() in files["data.json"]

    with ctx.db.session() as s:
        got = [
            (e.action, e.actor_type)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action.like("export.%")).order_by(AuditEvent.seq)
            )
        ]
    assert ("export.requested", "guardian") in got
    # the download was the guardian's, not the child's: the log must say who read the data (P19)
    assert ("export.downloaded", "guardian") in got, got


def test_guardian_asks_for_deletion(client, ctx):
    token, child = make_minor(client)
    consent_as_guardian(client, token)
    code = guardian_code(client)
    r = client.post(
        "/api/v1/guardian/requests", json={"guardian_phone": GUARDIAN_PHONE, "code": code, "kind": "deletion"}
    )
    assert r.status_code == 202, r.text
    [result] = r.json()
    assert result["child_id"] == child["id"] and result["erase_after"]
    c = client.get("/api/v1/me/account-cancellation", headers=auth(token))
    assert c.status_code == 200 and c.json()["status"] == "cooling_off"
    assert count(ctx, "audit_events", "action = 'cancellation.requested' AND actor_type = 'guardian'") == 1


def test_guardian_requests_need_a_valid_code(client, ctx):
    token, _ = make_minor(client)
    consent_as_guardian(client, token)
    r = client.post(
        "/api/v1/guardian/requests",
        json={"guardian_phone": GUARDIAN_PHONE, "code": "000000", "kind": "export"},
    )
    assert_error(r, 400, "invalid_code")
    r = client.post(
        "/api/v1/guardian/requests",
        json={"guardian_phone": GUARDIAN_PHONE, "code": "000000", "kind": "everything"},
    )
    assert_error(r, 422)
    assert count(ctx, "data_exports") == 0


def test_an_unknown_guardian_gets_the_same_answer_and_no_sms(client, ctx):
    sign_up(client)
    before = count(ctx, "dev_sms_outbox")
    r = client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE})
    assert r.status_code == 202
    assert count(ctx, "dev_sms_outbox") == before
    r = client.post(
        "/api/v1/guardian/requests",
        json={"guardian_phone": GUARDIAN_PHONE, "code": "123456", "kind": "export"},
    )
    assert_error(r, 400, "invalid_code")  # what a known guardian with a wrong code gets


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"guardian_phone": "123"},
        {"guardian_phone": 13700137000},
        {"guardian_phone": "1" * 40},
        {"guardian_phone": GUARDIAN_PHONE, "x": 1},
    ],
)
def test_bad_guardian_phone_is_422(client, body):
    token, _ = make_minor(client)
    assert_error(client.post("/api/v1/me/guardian/sms-codes", json=body, headers=auth(token)), 422)
    assert_error(client.post("/api/v1/guardian/sms-codes", json=body), 422)


def test_guardian_export_ids_of_others_are_refused(client):
    assert_error(client.get("/api/v1/guardian/exports/nope", headers={"X-Guardian-Token": "abc"}), 401)
    r = client.get("/api/v1/guardian/exports/nope/download", headers={"X-Guardian-Token": "x" * 65})
    assert_error(r, 401, "invalid_guardian_token")


def test_a_restricted_minor_cannot_grant_consent_alone(client, ctx):
    """The minors gate lets /api/v1/privacy/ through so the policy can be read and agreed to; granting a
    (separate) consent is the minor consenting alone, which P42 forbids until the guardian has."""
    token, _ = make_minor(client)
    for purpose in ("location", "real_name", "personalization"):
        r = client.put(f"/api/v1/privacy/consents/{purpose}", json={"granted": True}, headers=auth(token))
        assert_error(r, 403, "guardian_consent_required")
    assert count(ctx, "consent_events") == 0


def test_a_known_minor_cannot_lift_the_restriction_by_editing_the_birthday(client):
    """Once the service knows the user is under 18, a new birthday typed by that user is no guardian
    consent: the restriction must stay until a guardian confirms."""
    token, _ = make_minor(client)
    r = client.patch("/api/v1/me", json={"birthday": years_ago(30).isoformat()}, headers=auth(token))
    assert_error(r, 409, "minor_birthday_locked")
    assert_error(client.get("/api/v1/me/sessions", headers=auth(token)), 403, "guardian_consent_required")


# --- guardians only for minors, for as long as the child is one (issue 8, part 1) ----------------

UNKNOWN_PHONE = "13600136000"


def make_minor_born(client, born: date, phone: str = PHONE) -> str:
    token, _ = sign_up(client, phone)
    r = client.patch("/api/v1/me", json={"birthday": born.isoformat()}, headers=auth(token))
    assert r.status_code == 200, r.text
    return token


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_an_adult_cannot_link_a_guardian(client, ctx):
    """The attack: an adult attaches a phone that can then export and delete the account. An adult
    (declared at sign-up, or 18 today) gets 403 and no text is sent."""
    token, _ = sign_up(client)
    on_18th, _ = sign_up(client, OTHER_PHONE)
    r = client.patch("/api/v1/me", json={"birthday": years_ago(18).isoformat()}, headers=auth(on_18th))
    assert r.status_code == 200, r.text
    before = count(ctx, "dev_sms_outbox")
    for t in (token, on_18th):
        body = {"guardian_phone": GUARDIAN_PHONE}
        assert_error(
            client.post("/api/v1/me/guardian/sms-codes", json=body, headers=auth(t)), 403, "not_a_minor"
        )
        body["code"] = "123456"
        assert_error(
            client.post("/api/v1/me/guardian/consent", json=body, headers=auth(t)), 403, "not_a_minor"
        )
    assert count(ctx, "dev_sms_outbox") == before
    assert count(ctx, "guardian_consents") == 0


def test_the_user_sees_the_linked_guardian(client):
    token, _ = make_minor(client)
    consent_as_guardian(client, token)
    r = client.get("/api/v1/me/guardian", headers=auth(token))
    assert r.status_code == 200
    g = r.json()
    assert g["minor"] is True and g["restricted"] is False and g["guardian_consented_at"]
    assert g["guardian_phone"] == "137****7000" and GUARDIAN_PHONE not in r.text
    assert g["guardian_linked_at"] == g["guardian_consented_at"]
    assert g["guardian_active"] is True and g["revocation_needs_guardian"] is True
    assert date.fromisoformat(g["guardian_until"]) == years_ago(17).replace(year=years_ago(17).year + 18)


def test_a_second_guardian_cannot_replace_the_first(client):
    """Linking another phone would unlink the first guardian without their agreement."""
    token, _ = make_minor(client)
    consent_as_guardian(client, token)
    body = {"guardian_phone": UNKNOWN_PHONE}
    r = client.post("/api/v1/me/guardian/sms-codes", json=body, headers=auth(token))
    assert_error(r, 409, "guardian_already_linked")
    body["code"] = "123456"
    r = client.post("/api/v1/me/guardian/consent", json=body, headers=auth(token))
    assert_error(r, 409, "guardian_already_linked")


def test_a_minor_unlinks_only_with_the_guardians_code(client, ctx):
    token, child = make_minor(client)
    consent_as_guardian(client, token)
    h = auth(token)
    assert_error(client.delete("/api/v1/me/guardian", headers=h), 403, "guardian_agreement_required")
    # the guardian's consent code, the user's own login code or a guess are no agreement
    clock.advance(timedelta(seconds=61))
    assert client.post("/api/v1/auth/sms-codes", json={"phone": PHONE}).status_code == 202
    for code in ("123456", latest_code(client, PHONE)):
        r = client.request("DELETE", "/api/v1/me/guardian", json={"code": code}, headers=h)
        assert_error(r, 400, "invalid_code")
    assert client.get("/api/v1/me/guardian", headers=h).json()["guardian_active"] is True

    r = client.post("/api/v1/me/guardian/revocation/sms-codes", headers=h)
    assert r.status_code == 202, r.text
    [message, *_] = outbox(client, GUARDIAN_PHONE)
    assert "解除" in message["text"]
    r = client.request("DELETE", "/api/v1/me/guardian", json={"code": code_in(message)}, headers=h)
    assert r.status_code == 204, r.text

    g = client.get("/api/v1/me/guardian", headers=h).json()
    assert g["guardian_phone"] is None and g["guardian_active"] is False
    # without a guardian the minor is restricted again, and the number is no guardian any more
    assert g["restricted"] is True and g["guardian_consented_at"] is None
    assert_error(client.get("/api/v1/me/sessions", headers=h), 403, "guardian_consent_required")
    sent = len(outbox(client, GUARDIAN_PHONE))
    clock.advance(timedelta(seconds=61))
    assert (
        client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}).status_code == 202
    )
    assert len(outbox(client, GUARDIAN_PHONE)) == sent
    with ctx.db.session() as s:
        e = s.scalars(select(AuditEvent).where(AuditEvent.action == "guardian.revoked")).one()
        assert e.subject_id == child["id"] and e.actor_type == "guardian"


def test_unlinking_without_a_guardian_is_404(client):
    token, _ = make_minor(client)
    h = auth(token)
    assert_error(client.delete("/api/v1/me/guardian", headers=h), 404, "guardian_not_linked")
    assert_error(
        client.post("/api/v1/me/guardian/revocation/sms-codes", headers=h), 404, "guardian_not_linked"
    )


def test_guardian_powers_end_on_the_childs_18th_birthday(client, ctx):
    """Computed on every request, not by a job: a code sent, or an export token issued, before midnight
    is worth nothing after it."""
    today = china_today()
    set_china_date(today, hour=23)
    clock.advance(timedelta(minutes=56))  # 23:56 in Beijing; the child turns 18 at midnight
    token = make_minor_born(client, years_ago(18, today + timedelta(days=1)))
    consent_as_guardian(client, token)

    code = guardian_code(client)  # 23:57
    r = client.post(
        "/api/v1/guardian/requests", json={"guardian_phone": GUARDIAN_PHONE, "code": code, "kind": "export"}
    )
    assert r.status_code == 202, r.text
    export_id, dl_token = r.json()[0]["export_id"], r.json()[0]["download_token"]
    url = f"/api/v1/guardian/exports/{export_id}/download"
    assert client.get(url, headers={"X-Guardian-Token": dl_token}).status_code == 200
    code = guardian_code(client)  # 23:58

    clock.advance(timedelta(minutes=3))  # past midnight: the child is 18 today
    assert china_today() == today + timedelta(days=1)
    for kind in ("export", "deletion"):
        r = client.post(
            "/api/v1/guardian/requests", json={"guardian_phone": GUARDIAN_PHONE, "code": code, "kind": kind}
        )
        assert_error(r, 403, "guardian_rights_ended")  # (the refused request spent no code)
    assert_error(client.get(url, headers={"X-Guardian-Token": dl_token}), 403, "guardian_rights_ended")
    assert_error(
        client.get(f"/api/v1/guardian/exports/{export_id}", headers={"X-Guardian-Token": dl_token}),
        403,
        "guardian_rights_ended",
    )
    assert count(ctx, "account_cancellations") == 0


def test_an_adult_sees_and_removes_a_stale_guardian_link(client, ctx):
    today = china_today()
    token = make_minor_born(client, years_ago(18, today + timedelta(days=1)))
    consent_as_guardian(client, token)
    set_china_date(today + timedelta(days=1))
    h = auth(token)
    g = client.get("/api/v1/me/guardian", headers=h).json()
    assert g["minor"] is False and g["guardian_active"] is False and g["guardian_until"] is None
    assert g["guardian_phone"] == "137****7000" and g["revocation_needs_guardian"] is False
    # the guardian's number no longer gets texts, like any number that is nobody's guardian
    sent = len(outbox(client, GUARDIAN_PHONE))
    assert (
        client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": GUARDIAN_PHONE}).status_code == 202
    )
    assert len(outbox(client, GUARDIAN_PHONE)) == sent
    # no code is needed, nor sent, to remove it
    assert_error(
        client.post("/api/v1/me/guardian/revocation/sms-codes", headers=h),
        409,
        "guardian_agreement_not_needed",
    )
    assert client.delete("/api/v1/me/guardian", headers=h).status_code == 204
    assert client.get("/api/v1/me/guardian", headers=h).json()["guardian_phone"] is None
    assert count(ctx, "guardian_consents", "revoked_at IS NOT NULL") == 1


def test_guardian_endpoints_answer_alike_for_known_and_unknown_numbers(client, ctx):
    """Same status and body, and the same work: the SMS budgets are checked and spent for an unknown
    number too, so neither a 429 nor the attempts left on a wrong code tells a guardian apart."""
    token, _ = make_minor(client)
    consent_as_guardian(client, token)
    clock.advance(timedelta(seconds=61))
    phones = (GUARDIAN_PHONE, UNKNOWN_PHONE)
    sent = {p: len(outbox(client, p)) for p in phones}

    def both(send):
        return [send(p) for p in phones]

    def ask(p):
        return client.post("/api/v1/guardian/sms-codes", json={"guardian_phone": p})

    known, unknown = both(ask)
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    # only the guardian of a minor gets the text
    assert len(outbox(client, GUARDIAN_PHONE)) == sent[GUARDIAN_PHONE] + 1
    assert len(outbox(client, UNKNOWN_PHONE)) == sent[UNKNOWN_PHONE] == 0

    known, unknown = both(ask)  # at once again: both within the resend budget
    assert known.status_code == unknown.status_code == 429
    k, u = known.json()["error"], unknown.json()["error"]
    assert (k["code"], k["message"], set(k["details"])) == (u["code"], u["message"], set(u["details"]))

    bad = wrong_code(latest_code(client, GUARDIAN_PHONE))
    for kind in ("export", "deletion"):
        known, unknown = both(
            lambda p, kind=kind: client.post(
                "/api/v1/guardian/requests", json={"guardian_phone": p, "code": bad, "kind": kind}
            )
        )
        assert known.status_code == unknown.status_code == 400
        assert known.json() == unknown.json()
    assert count(ctx, "data_exports") == 0


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{not json", 400), (b'{"code": 123456}', 422), (b'{"code": "1"}', 422), (b'{"x": 1}', 422)],
)
def test_bad_unlink_bodies_are_4xx_and_change_nothing(client, content, status):
    token, _ = make_minor(client)
    consent_as_guardian(client, token)
    headers = {**auth(token), "Content-Type": "application/json"}
    for path in ("/api/v1/me/guardian", "/api/v1/me/guardian/revocation/sms-codes"):
        method = "DELETE" if path.endswith("guardian") else "POST"
        assert_error(client.request(method, path, content=content, headers=headers), status)
    assert client.get("/api/v1/me/guardian", headers=auth(token)).json()["guardian_active"] is True
