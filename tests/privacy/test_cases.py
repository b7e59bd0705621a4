"""Deletion and correction requests, complaints and contact (P34, P35, P37, R05, R14): the user's
identity is verified by an SMS code, the deadline is the earlier of 15 calendar days and 15 PRC working
days after it, a refusal gives reasons and tells the user they may go to court; staff work through the
CLI."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from privacy_support import (
    OTHER_PHONE,
    PHONE,
    assert_error,
    count,
    outbox,
    run_cli,
    set_china_date,
)
from sqlalchemy import select

from conftest import auth, sign_up
from huirongke.kit.clock import clock
from huirongke.kit.errors import AppError
from huirongke.privacy import cases
from huirongke.privacy.models import AuditEvent, PrivacyCase

DESCRIPTION = "我的昵称被他人冒用，请核实处理。"


def open_case(client, token, kind="contact", **extra):
    body = {"kind": kind, "description": DESCRIPTION, **extra}
    r = client.post("/api/v1/me/cases", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()


def case_code(client, phone=PHONE) -> str:
    """The newest message: a login code went to the same phone a moment before."""
    import re

    messages = outbox(client, phone)
    newest = messages[0]
    assert "个人信息相关申请" in newest["text"], messages
    m = re.search(r"(\d{6})", newest["text"])
    assert m
    return m.group(1)


def verify(client, token, case_id, phone=PHONE):
    r = client.post(
        f"/api/v1/me/cases/{case_id}/verification",
        json={"code": case_code(client, phone)},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    return r.json()


# The deadline ---------------------------------------------------------------------------------------


def test_deadline_over_national_day_is_15_calendar_days(client):
    """Verified on Monday 2026-09-28: 15 working days (9/29, 9/30, 10/8, 10/9, 10/10 调休, 10/12 ...)
    would run to Friday 2026-10-23; the policy promises a reply within 15 days: 2026-10-13."""
    set_china_date(date(2026, 9, 28))
    token, _ = sign_up(client)
    case = open_case(client, token)
    assert case["status"] == "awaiting_verification" and case["deadline"] is None
    opened = verify(client, token, case["id"])
    assert opened["status"] == "open" and opened["status_label"] == "处理中"
    assert opened["deadline"] == "2026-10-13"


def test_deadline_over_spring_festival_is_15_calendar_days(client):
    """Verified on Friday 2026-02-13, before the 2026 Spring Festival (2/15-2/23 off, 2/14 and 2/28
    调休): the 15th working day is 2026-03-12, the 15th calendar day 2026-02-28, and the earlier wins."""
    set_china_date(date(2026, 2, 13))
    token, _ = sign_up(client)
    case = open_case(client, token)
    assert verify(client, token, case["id"])["deadline"] == "2026-02-28"


def test_deadline_in_an_ordinary_fortnight_is_15_calendar_days(client):
    """Verified on Monday 2026-11-02, no holiday near: 15 working days end on Monday 11-23 (three
    weekends), 15 calendar days on Tuesday 11-17."""
    set_china_date(date(2026, 11, 2))
    token, _ = sign_up(client)
    case = open_case(client, token)
    assert verify(client, token, case["id"])["deadline"] == "2026-11-17"


def test_deadline_counts_from_the_verification_day_in_beijing(client):
    """01:00 on Thursday 2026-10-15 in Beijing is still Wednesday in UTC: Beijing's date counts."""
    set_china_date(date(2026, 10, 15), hour=1)
    token, _ = sign_up(client)
    case = open_case(client, token)
    assert verify(client, token, case["id"])["deadline"] == "2026-10-30"


def test_reply_deadline_is_the_earlier_of_the_two_counts():
    """With real data the calendar count is the earlier one. Against a calendar whose every day of 2026
    is a working day (every weekend a make-up day: the most a calendar can give), 15 working days still
    take 15 calendar days: the two counts meet, and never cross the other way."""
    from huirongke.kit import workdays

    weekends = frozenset(
        d for d in (date(2026, 1, 1) + timedelta(days=n) for n in range(365)) if d.weekday() >= 5
    )
    every_day = workdays.WorkdayCalendar({2026: workdays.YearSchedule(frozenset(), weekends)})
    assert every_day.add_workdays(date(2026, 2, 13), 15) == date(2026, 2, 28)
    assert cases.reply_deadline(every_day, date(2026, 2, 13)) == date(2026, 2, 28)
    real = workdays.load()
    for start in (date(2026, 2, 13), date(2026, 9, 28), date(2026, 11, 2)):
        assert cases.reply_deadline(real, start) == start + timedelta(days=15) < real.add_workdays(start, 15)


# The user's side -----------------------------------------------------------------------------------


def test_a_case_is_verified_by_a_code_to_the_users_own_phone(client, ctx):
    token, _ = sign_up(client)
    case = open_case(client, token, "complaint")
    assert case["kind"] == "complaint" and case["kind_label"] == "投诉举报"
    assert case["description"] == DESCRIPTION
    assert case["status_label"] == "待验证身份"
    # a wrong code does not open it
    r = client.post(
        f"/api/v1/me/cases/{case['id']}/verification", json={"code": "000000"}, headers=auth(token)
    )
    if case_code(client) != "000000":
        assert_error(r, 400, "invalid_code")
    opened = verify(client, token, case["id"])
    assert opened["status"] == "open"
    assert [h["status"] for h in opened["history"]] == ["awaiting_verification", "open"]
    # the code is spent
    r = client.post(
        f"/api/v1/me/cases/{case['id']}/verification", json={"code": case_code(client)}, headers=auth(token)
    )
    assert_error(r, 409, "case_already_verified")
    # the user's words are encrypted at rest
    with ctx.db.session() as s:
        row = s.get(PrivacyCase, case["id"])
        assert row is not None and DESCRIPTION.encode() not in (row.description_enc or b"")


def test_deletion_needs_one_of_the_four_grounds(client, ctx):
    token, _ = sign_up(client)
    r = client.post(
        "/api/v1/me/cases", json={"kind": "deletion", "description": DESCRIPTION}, headers=auth(token)
    )
    err = assert_error(r, 422, "invalid_deletion_ground")
    assert set(err["details"]["grounds"]) == set(cases.DELETION_GROUNDS)
    r = client.post(
        "/api/v1/me/cases",
        json={"kind": "deletion", "description": DESCRIPTION, "ground": "bored"},
        headers=auth(token),
    )
    assert_error(r, 422, "validation_error")
    assert count(ctx, "privacy_cases") == 0
    for ground in cases.DELETION_GROUNDS:
        clock.advance(timedelta(seconds=61))
        case = open_case(client, token, "deletion", ground=ground)
        assert case["ground"] == ground and case["ground_label"] == cases.DELETION_GROUNDS[ground]
    kinds = client.get("/api/v1/privacy/case-kinds").json()
    assert set(kinds["deletion_grounds"]) == {
        "unlawful_processing",
        "no_consent",
        "breach_of_agreement",
        "service_ended",
    }


def test_ground_is_dropped_for_other_kinds(client):
    token, _ = sign_up(client)
    case = open_case(client, token, "correction", ground="no_consent")
    assert case["ground"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "praise", "description": DESCRIPTION},
        {"kind": "contact", "description": "短"},
        {"kind": "contact", "description": "    短    "},
        {"kind": "contact", "description": "字" * 2001},
        {"kind": "contact"},
        {"description": DESCRIPTION},
        {"kind": "contact", "description": 12345678},
        {"kind": "contact", "description": DESCRIPTION, "extra": 1},
        [],
        "text",
    ],
)
def test_bad_case_bodies_are_422(client, ctx, body):
    token, _ = sign_up(client)
    r = client.post("/api/v1/me/cases", json=body, headers=auth(token))
    assert_error(r, 422)
    assert count(ctx, "privacy_cases") == 0


def test_another_users_case_is_404(client):
    a, _ = sign_up(client)
    b, _ = sign_up(client, OTHER_PHONE)
    case = open_case(client, a)
    assert_error(client.get(f"/api/v1/me/cases/{case['id']}", headers=auth(b)), 404, "case_not_found")
    r = client.post(f"/api/v1/me/cases/{case['id']}/verification", json={"code": "123456"}, headers=auth(b))
    assert_error(r, 404, "case_not_found")
    assert_error(client.post(f"/api/v1/me/cases/{case['id']}/verification-code", headers=auth(b)), 404)
    assert client.get("/api/v1/me/cases", headers=auth(b)).json() == []
    # b's own code cannot open a's case either
    assert_error(client.get("/api/v1/me/cases/nope", headers=auth(a)), 404, "case_not_found")


def test_resending_the_code_waits_a_minute(client):
    token, _ = sign_up(client)
    case = open_case(client, token)
    r = client.post(f"/api/v1/me/cases/{case['id']}/verification-code", headers=auth(token))
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) <= 60
    clock.advance(timedelta(seconds=61))
    r = client.post(f"/api/v1/me/cases/{case['id']}/verification-code", headers=auth(token))
    assert r.status_code == 202
    verify(client, token, case["id"])


def test_refusal_gives_reasons_and_the_right_to_go_to_court(client, ctx):
    token, _ = sign_up(client)
    case = open_case(client, token, "deletion", ground="no_consent")
    verify(client, token, case["id"])
    with ctx.db.session() as s, pytest.raises(AppError) as exc:
        cases.refuse(s, case["id"], "staff-7", "不")
    assert exc.value.code == "refusal_reason_required"
    with ctx.db.session() as s:
        cases.refuse(s, case["id"], "staff-7", "该信息为依法须保存的交易记录，保存期限未满")
    got = client.get(f"/api/v1/me/cases/{case['id']}", headers=auth(token)).json()
    assert got["status"] == "refused" and got["status_label"] == "不予处理"
    assert got["refusal_reason"] == "该信息为依法须保存的交易记录，保存期限未满"
    assert "人民法院" in got["court_notice"] and "诉讼" in got["court_notice"]
    # a closed case cannot be handled again
    with ctx.db.session() as s, pytest.raises(AppError) as exc:
        cases.resolve(ctx, s, case["id"], "staff-7", "已删除")
    assert exc.value.code == "case_not_open"
    owner = case_user(ctx, case["id"])
    with ctx.db.session() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.subject_id == owner)))
    assert "case.refused" in actions


def case_user(ctx, case_id: str) -> str:
    with ctx.db.session() as s:
        row = s.get(PrivacyCase, case_id)
        assert row is not None
        return row.user_id


def test_resolution_is_shown_to_the_user(client, ctx):
    token, _ = sign_up(client)
    case = open_case(client, token, "correction")
    verify(client, token, case["id"])
    with ctx.db.session() as s:
        cases.resolve(ctx, s, case["id"], "staff-7", "已为您更正昵称")
    got = client.get(f"/api/v1/me/cases/{case['id']}", headers=auth(token)).json()
    assert got["status"] == "resolved" and got["resolution"] == "已为您更正昵称"
    assert got["court_notice"] is None and got["refusal_reason"] is None
    assert [h["status"] for h in got["history"]] == ["awaiting_verification", "open", "resolved"]


def test_unverified_cases_are_not_handled_by_staff(client, ctx):
    token, _ = sign_up(client)
    case = open_case(client, token)
    with ctx.db.session() as s:
        assert cases.staff_queue(s) == []
        with pytest.raises(AppError) as exc:
            cases.refuse(s, case["id"], "staff-7", "理由说明足够长")
    assert exc.value.code == "case_not_open"


def test_overdue_cases_are_listed(client, ctx):
    set_china_date(date(2026, 9, 28))
    token, _ = sign_up(client)
    case = open_case(client, token)
    assert verify(client, token, case["id"])["deadline"] == "2026-10-13"
    with ctx.db.session() as s:
        assert cases.overdue(s) == []
    set_china_date(date(2026, 10, 13))
    with ctx.db.session() as s:
        assert cases.overdue(s) == []  # the deadline day itself is still in time
    set_china_date(date(2026, 10, 14))
    with ctx.db.session() as s:
        assert [c.id for c in cases.overdue(s)] == [case["id"]]


# Staff CLI -----------------------------------------------------------------------------------------


def test_cli_list_show_resolve(client, ctx, settings, monkeypatch):
    token, _ = sign_up(client)
    case = open_case(client, token, "deletion", ground="unlawful_processing")
    r = run_cli(monkeypatch, settings, "cases", "list")
    assert r.exit_code == 0 and "没有待处理的申请" in r.output  # not verified yet
    verify(client, token, case["id"])
    r = run_cli(monkeypatch, settings, "cases", "list")
    assert r.exit_code == 0, r.output
    assert case["id"] in r.output and "删除个人信息申请" in r.output

    r = run_cli(monkeypatch, settings, "cases", "show", case["id"], "--staff", "staff-9")
    assert r.exit_code == 0, r.output
    assert DESCRIPTION in r.output and cases.DELETION_GROUNDS["unlawful_processing"] in r.output
    assert count(ctx, "audit_events", "action = 'case.description.read' AND actor_id = 'staff-9'") == 1

    r = run_cli(
        monkeypatch,
        settings,
        "cases",
        "resolve",
        case["id"],
        "--staff",
        "staff-9",
        "--resolution",
        "已删除相关信息",
    )
    assert r.exit_code == 0, r.output
    got = client.get(f"/api/v1/me/cases/{case['id']}", headers=auth(token)).json()
    assert got["status"] == "resolved" and got["resolution"] == "已删除相关信息"
    r = run_cli(
        monkeypatch, settings, "cases", "resolve", case["id"], "--staff", "staff-9", "--resolution", "再次"
    )
    assert r.exit_code == 1


def test_cli_refuse(client, ctx, settings, monkeypatch):
    token, _ = sign_up(client)
    case = open_case(client, token, "complaint")
    verify(client, token, case["id"])
    r = run_cli(monkeypatch, settings, "cases", "refuse", case["id"], "--staff", "s1", "--reason", "无")
    assert r.exit_code == 1
    r = run_cli(
        monkeypatch,
        settings,
        "cases",
        "refuse",
        case["id"],
        "--staff",
        "s1",
        "--reason",
        "投诉事项不属于个人信息处理范围",
    )
    assert r.exit_code == 0, r.output
    got = client.get(f"/api/v1/me/cases/{case['id']}", headers=auth(token)).json()
    assert got["refusal_reason"] == "投诉事项不属于个人信息处理范围" and got["court_notice"]


def test_cli_show_unknown_case(ctx, settings, monkeypatch):
    r = run_cli(monkeypatch, settings, "cases", "show", "nope", "--staff", "s1")
    assert r.exit_code == 1


def test_cli_list_overdue(client, ctx, settings, monkeypatch):
    set_china_date(date(2026, 9, 28))
    token, _ = sign_up(client)
    case = open_case(client, token)
    verify(client, token, case["id"])
    set_china_date(date(2026, 11, 2))
    # the CLI runs in this process, so it sees the moved clock too
    with ctx.db.session() as s:
        assert [c.id for c in cases.overdue(s)] == [case["id"]]
    r = run_cli(monkeypatch, settings, "cases", "list", "--overdue")
    assert r.exit_code == 0 and case["id"] in r.output


def test_a_case_code_is_no_login_code(client):
    token, _ = sign_up(client)
    open_case(client, token)
    r = client.post("/api/v1/auth/sessions", json={"phone": PHONE, "code": case_code(client)})
    assert_error(r, 400, "invalid_code")
