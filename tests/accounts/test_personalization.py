"""One personalisation control, off by default (P05, issue 7 part 7): the privacy-settings switch
`personalized_recommendations` and the `personalization` consent are one fact. Changing either shows
in both at once."""

from __future__ import annotations

from conftest import auth, sign_up
from privacy.privacy_support import grant, rows

SETTINGS = "/api/v1/me/privacy-settings"


def switch(client, token: str) -> bool:
    r = client.get(SETTINGS, headers=auth(token))
    assert r.status_code == 200, r.text
    return bool(r.json()["personalized_recommendations"])


def consent(client, token: str) -> dict:
    r = client.get("/api/v1/privacy/consents", headers=auth(token))
    assert r.status_code == 200, r.text
    (state,) = [c for c in r.json() if c["purpose"] == "personalization"]
    return state


def test_a_new_account_has_it_off_in_both_places(client):
    token, _ = sign_up(client)
    assert switch(client, token) is False
    state = consent(client, token)
    assert (state["granted"], state["updated_at"]) == (False, None)


def test_switching_on_in_the_settings_grants_the_consent(client, ctx):
    token, user = sign_up(client)
    r = client.patch(SETTINGS, json={"personalized_recommendations": True}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json() == {"show_phone": False, "show_region": False, "personalized_recommendations": True}
    assert switch(client, token) is True
    state = consent(client, token)
    assert state["granted"] is True and state["updated_at"] is not None
    # recorded in the consent ledger, with the settings as its channel, and audited as a grant
    ledger = rows(
        ctx,
        "SELECT granted, channel FROM consent_events WHERE user_id = :u AND purpose = 'personalization'",
        u=user["id"],
    )
    assert [(bool(g), c) for g, c in ledger] == [(True, "settings")]
    audited = rows(
        ctx,
        "SELECT purpose FROM audit_events WHERE subject_id = :u AND action = 'consent.granted'",
        u=user["id"],
    )
    assert [p for (p,) in audited] == ["personalization"]


def test_switching_off_in_the_settings_withdraws_the_consent(client, ctx):
    token, user = sign_up(client)
    grant(client, token, "personalization")
    assert switch(client, token) is True
    r = client.patch(SETTINGS, json={"personalized_recommendations": False}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["personalized_recommendations"] is False
    assert consent(client, token)["granted"] is False
    withdrawn = rows(
        ctx,
        "SELECT purpose FROM audit_events WHERE subject_id = :u AND action = 'consent.withdrawn'",
        u=user["id"],
    )
    assert [p for (p,) in withdrawn] == ["personalization"]


def test_withdrawing_the_consent_turns_the_switch_off(client):
    token, _ = sign_up(client)
    r = client.patch(SETTINGS, json={"personalized_recommendations": True}, headers=auth(token))
    assert r.status_code == 200, r.text
    grant(client, token, "personalization", False)
    assert switch(client, token) is False
    assert consent(client, token)["granted"] is False


def test_setting_the_same_value_again_records_nothing_new(client, ctx):
    token, user = sign_up(client)
    for _ in range(2):
        r = client.patch(SETTINGS, json={"personalized_recommendations": True}, headers=auth(token))
        assert r.status_code == 200, r.text
    n = rows(
        ctx,
        "SELECT COUNT(*) FROM consent_events WHERE user_id = :u AND purpose = 'personalization'",
        u=user["id"],
    )
    assert n[0][0] == 1


def test_the_switch_drops_the_cached_identity(client, ctx):
    """The consent states travel with the cached identity: a change through the settings must drop it,
    like a change through the consents API."""
    token, _ = sign_up(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert len(ctx.identities) == 1
    r = client.patch(SETTINGS, json={"personalized_recommendations": True}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert len(ctx.identities) == 0


def test_the_other_switches_leave_the_consent_alone(client, ctx):
    token, user = sign_up(client)
    r = client.patch(SETTINGS, json={"show_region": True}, headers=auth(token))
    assert r.json() == {"show_phone": False, "show_region": True, "personalized_recommendations": False}
    n = rows(ctx, "SELECT COUNT(*) FROM consent_events WHERE user_id = :u", u=user["id"])
    assert n[0][0] == 0
