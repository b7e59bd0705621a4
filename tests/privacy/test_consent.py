"""Consent (P12, P23, P33, R02, R04) and permission prompts (R03, P40)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from privacy_support import (
    ID_NUMBER,
    OTHER_PHONE,
    REAL_NAME,
    assert_error,
    count,
    grant,
    rows,
    submit_real_name,
)

from conftest import auth, sign_up
from huirongke.kit.clock import clock
from huirongke.privacy import consent
from huirongke.privacy.purposes import PURPOSES

CONSENT_PURPOSES = sorted(k for k, p in PURPOSES.items() if p.needs_consent)
CONTRACT_PURPOSES = sorted(k for k, p in PURPOSES.items() if not p.needs_consent)


def consents(client, token) -> dict[str, dict]:
    r = client.get("/api/v1/privacy/consents", headers=auth(token))
    assert r.status_code == 200, r.text
    return {c["purpose"]: c for c in r.json()}


def post_real_name(client, token):
    return client.post(
        "/api/v1/me/real-name", json={"name": REAL_NAME, "id_number": ID_NUMBER}, headers=auth(token)
    )


def test_nothing_is_granted_by_default(client):
    token, _ = sign_up(client)
    got = consents(client, token)
    assert sorted(got) == CONSENT_PURPOSES
    for c in got.values():
        assert c["granted"] is False
        assert c["updated_at"] is None
        assert {"purpose", "granted", "updated_at"} <= set(c)


def test_an_endpoint_without_its_consent_answers_428_with_the_purpose(client, ctx):
    token, _ = sign_up(client)
    err = assert_error(post_real_name(client, token), 428, "consent_required")
    assert err["details"]["purpose"] == "real_name"
    assert count(ctx, "real_name_verifications") == 0


@pytest.mark.parametrize("purpose", CONSENT_PURPOSES)
def test_granting_one_purpose_grants_nothing_else(client, ctx, purpose):
    """R02: no bundling."""
    token, _ = sign_up(client)
    out = grant(client, token, purpose)
    assert out["purpose"] == purpose and out["granted"] is True and out["updated_at"]
    got = consents(client, token)
    assert got[purpose]["granted"] is True
    assert [k for k, c in got.items() if c["granted"]] == [purpose]
    assert count(ctx, "consent_events") == 1
    if purpose != "real_name":
        assert_error(post_real_name(client, token), 428, "consent_required")


def test_withdrawal_is_one_action_stops_processing_and_deletes_purpose_only_data(client, ctx):
    token, user = sign_up(client)
    grant(client, token, "personalization")
    submit_real_name(client, token)
    assert count(ctx, "real_name_verifications") == 1
    assert client.get("/api/v1/me/real-name", headers=auth(token)).json()["status"] == "pending"

    # R04: one call, in the same place as granting
    r = client.put("/api/v1/privacy/consents/real_name", json={"granted": False}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["granted"] is False

    # the data held only for that purpose is gone, and the processing stops at once
    assert count(ctx, "real_name_verifications") == 0
    r = client.get("/api/v1/me/real-name", headers=auth(token))
    assert r.status_code == 200 and r.json() is None
    assert client.get("/api/v1/me", headers=auth(token)).json()["real_name"] is None
    assert_error(post_real_name(client, token), 428, "consent_required")

    # P33: nothing else changes
    got = consents(client, token)
    assert got["personalization"]["granted"] is True
    me = client.get("/api/v1/me", headers=auth(token))
    assert me.status_code == 200 and me.json()["phone"] == "+8613800138000"

    # ... and the past is not rewritten: the ledger keeps the grant and the withdrawal
    events = rows(
        ctx,
        "SELECT granted FROM consent_events WHERE user_id = :u AND purpose = 'real_name' ORDER BY at",
        u=user["id"],
    )
    assert [bool(e[0]) for e in events] == [True, False]
    actions = [r[0] for r in rows(ctx, "SELECT action FROM audit_events ORDER BY seq")]
    assert "real_name.submitted" in actions
    assert actions.count("consent.withdrawn") == 1
    fields = rows(ctx, "SELECT fields FROM audit_events WHERE action = 'consent.withdrawn'")[0][0]
    assert "real_name_verifications.id_number_enc" in fields


def test_consent_can_be_given_again_after_withdrawal(client, ctx):
    token, _ = sign_up(client)
    grant(client, token, "real_name")
    grant(client, token, "real_name", False)
    grant(client, token, "real_name")
    assert post_real_name(client, token).status_code == 201
    assert count(ctx, "consent_events") == 3


def test_setting_the_same_state_twice_adds_no_event(client, ctx):
    token, _ = sign_up(client)
    grant(client, token, "location")
    grant(client, token, "location")
    assert count(ctx, "consent_events") == 1
    grant(client, token, "real_name", False)  # withdrawing what was never given: nothing to record
    assert count(ctx, "consent_events", "purpose = 'real_name' AND granted = :g", g=True) == 0


def test_consent_is_per_user(client):
    a, _ = sign_up(client)
    b, _ = sign_up(client, OTHER_PHONE)
    grant(client, a, "real_name")
    assert consents(client, b)["real_name"]["granted"] is False
    assert_error(post_real_name(client, b), 428, "consent_required")


@pytest.mark.parametrize("purpose", CONTRACT_PURPOSES)
def test_contract_purposes_cannot_be_toggled(client, purpose):
    token, _ = sign_up(client)
    for granted in (False, True):
        r = client.put(f"/api/v1/privacy/consents/{purpose}", json={"granted": granted}, headers=auth(token))
        assert_error(r, 409, "consent_not_applicable")


@pytest.mark.parametrize("purpose", ["nope", "REAL_NAME", "real_name ", "x" * 300, "%00"])
def test_unknown_purpose_is_404(client, purpose):
    token, _ = sign_up(client)
    r = client.put(f"/api/v1/privacy/consents/{purpose}", json={"granted": True}, headers=auth(token))
    assert_error(r, 404)


@pytest.mark.parametrize(
    "body", [{}, {"granted": None}, {"granted": "maybe"}, {"granted": [True]}, {"granted": True, "extra": 1}]
)
def test_consent_body_must_be_a_clear_boolean(client, ctx, body):
    token, _ = sign_up(client)
    r = client.put("/api/v1/privacy/consents/real_name", json=body, headers=auth(token))
    assert_error(r, 422, "validation_error")
    assert count(ctx, "consent_events") == 0


def test_consents_need_a_token(client):
    assert_error(client.get("/api/v1/privacy/consents"), 401, "unauthorized")
    assert_error(client.put("/api/v1/privacy/consents/real_name", json={"granted": True}), 401)


def test_require_consent_reads_the_latest_event(ctx, client):
    _, user = sign_up(client)
    with ctx.db.session() as s:
        assert not consent.is_granted(s, user["id"], "location")
        assert consent.is_granted(s, user["id"], "account")  # contract basis: no consent needed
        consent.set_consent(s, user["id"], "location", True, 1)
    with ctx.db.session() as s:
        assert consent.is_granted(s, user["id"], "location")
        consent.set_consent(s, user["id"], "location", False, 1)
    with ctx.db.session() as s:
        assert not consent.is_granted(s, user["id"], "location")


# Permission prompts (R03) ----------------------------------------------------------------------------


def perm(client, token, permission):
    r = client.get(f"/api/v1/privacy/permissions/{permission}", headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def report(client, token, permission, event):
    r = client.post(
        f"/api/v1/privacy/permissions/{permission}/events", json={"event": event}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_an_unasked_permission_may_be_asked(client):
    token, _ = sign_up(client)
    p = perm(client, token, "camera")
    assert p["state"] == "unknown" and p["may_ask"] is True and p["ask_after"] is None
    listed = client.get("/api/v1/privacy/permissions", headers=auth(token)).json()
    assert {x["permission"] for x in listed} == set(consent.PERMISSIONS)
    assert all(x["may_ask"] for x in listed)


@pytest.mark.parametrize("refusal", ["denied", "revoked"])
def test_no_new_prompt_within_48_hours_of_a_refusal(client, refusal):
    token, _ = sign_up(client)
    out = report(client, token, "location", refusal)
    assert out["state"] == refusal and out["may_ask"] is False and out["ask_after"]
    clock.advance(timedelta(hours=47, minutes=59))
    assert perm(client, token, "location")["may_ask"] is False
    clock.advance(timedelta(minutes=1))
    p = perm(client, token, "location")
    assert p["may_ask"] is True and p["state"] == refusal
    # a refusal of one permission says nothing about the others (never a package)
    assert perm(client, token, "contacts")["may_ask"] is True


def test_a_fresh_refusal_restarts_the_48_hours(client):
    token, _ = sign_up(client)
    report(client, token, "album", "denied")
    clock.advance(timedelta(hours=48))
    assert perm(client, token, "album")["may_ask"] is True
    report(client, token, "album", "granted")
    assert perm(client, token, "album")["state"] == "granted"
    clock.advance(timedelta(hours=1))
    report(client, token, "album", "revoked")
    clock.advance(timedelta(hours=47))
    assert perm(client, token, "album")["may_ask"] is False


def test_revoking_a_permission_stops_collection_through_it(client, ctx):
    """P40: collection happens only while the latest report is `granted`."""
    token, user = sign_up(client)
    report(client, token, "contacts", "granted")
    with ctx.db.session() as s:
        assert consent.permission_active(s, user["id"], "contacts")
    report(client, token, "contacts", "revoked")
    with ctx.db.session() as s:
        assert not consent.permission_active(s, user["id"], "contacts")


def test_unknown_permission_is_404(client):
    token, _ = sign_up(client)
    assert_error(
        client.get("/api/v1/privacy/permissions/telepathy", headers=auth(token)), 404, "permission_not_found"
    )
    r = client.post(
        "/api/v1/privacy/permissions/telepathy/events", json={"event": "denied"}, headers=auth(token)
    )
    assert_error(r, 404, "permission_not_found")


@pytest.mark.parametrize("body", [{}, {"event": "maybe"}, {"event": None}, {"event": "denied", "x": 1}, []])
def test_bad_permission_event_is_422(client, ctx, body):
    token, _ = sign_up(client)
    r = client.post("/api/v1/privacy/permissions/camera/events", json=body, headers=auth(token))
    assert_error(r, 422, "validation_error")
    assert count(ctx, "permission_events") == 0
