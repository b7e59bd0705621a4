"""huirongke.kit.workdays: PRC holidays and make-up working days (调休) from the data file shipped in
the project, an operator's file over it, weekends only for a year without data, and the warnings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import structlog
from fastapi.testclient import TestClient

from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.kit import workdays
from huirongke.kit.clock import clock, utcnow
from huirongke.kit.workdays import CalendarError, WorkdayCalendar, load, parse


def set_china_date(day: date) -> None:
    """Move the clock to 10:00 on `day` in Beijing."""
    clock.advance(datetime(day.year, day.month, day.day, 2, tzinfo=UTC) - utcnow())


def _span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


# The State Council General Office's notices, read from their text, not from the data file.
# 国务院办公厅关于2025年部分节假日安排的通知（国办发明电〔2024〕12号，2024年11月12日）
NOTICE_2025_DAYS_OFF = (
    {date(2025, 1, 1)}
    | _span(date(2025, 1, 28), date(2025, 2, 4))  # 春节
    | _span(date(2025, 4, 4), date(2025, 4, 6))  # 清明节
    | _span(date(2025, 5, 1), date(2025, 5, 5))  # 劳动节
    | _span(date(2025, 5, 31), date(2025, 6, 2))  # 端午节
    | _span(date(2025, 10, 1), date(2025, 10, 8))  # 国庆节、中秋节
)
NOTICE_2025_MAKEUP = {
    date(2025, 1, 26),
    date(2025, 2, 8),
    date(2025, 4, 27),
    date(2025, 9, 28),
    date(2025, 10, 11),
}
# 国务院办公厅关于2026年部分节假日安排的通知（2025年11月4日）
NOTICE_2026_DAYS_OFF = (
    _span(date(2026, 1, 1), date(2026, 1, 3))  # 元旦
    | _span(date(2026, 2, 15), date(2026, 2, 23))  # 春节
    | _span(date(2026, 4, 4), date(2026, 4, 6))  # 清明节
    | _span(date(2026, 5, 1), date(2026, 5, 5))  # 劳动节
    | _span(date(2026, 6, 19), date(2026, 6, 21))  # 端午节
    | _span(date(2026, 9, 25), date(2026, 9, 27))  # 中秋节
    | _span(date(2026, 10, 1), date(2026, 10, 7))  # 国庆节
)
NOTICE_2026_MAKEUP = {
    date(2026, 1, 4),
    date(2026, 2, 14),
    date(2026, 2, 28),
    date(2026, 5, 9),
    date(2026, 9, 20),
    date(2026, 10, 10),
}

VALID = "[2030]\nholidays = [2030-01-01]\nmakeup_workdays = []\n"


@pytest.mark.parametrize(
    ("year", "days_off", "makeup"),
    [(2025, NOTICE_2025_DAYS_OFF, NOTICE_2025_MAKEUP), (2026, NOTICE_2026_DAYS_OFF, NOTICE_2026_MAKEUP)],
)
def test_every_day_of_the_year_follows_the_state_councils_notice(year, days_off, makeup):
    calendar = load()
    for day in _span(date(year, 1, 1), date(year, 12, 31)):
        expected = day in makeup or (day.weekday() < 5 and day not in days_off)
        assert calendar.is_workday(day) is expected, day
    assert all(d.weekday() >= 5 for d in makeup)  # every make-up day is a weekend day made a working day


def test_named_days_of_2026():
    assert date(2026, 2, 14).weekday() == 5 and workdays.is_workday(date(2026, 2, 14))  # 调休 Saturday
    assert date(2026, 9, 20).weekday() == 6 and workdays.is_workday(date(2026, 9, 20))  # 调休 Sunday
    assert not workdays.is_workday(date(2026, 2, 16))  # a Monday in the Spring Festival
    assert not workdays.is_workday(date(2026, 9, 25))  # Mid-Autumn Festival, a Friday
    assert workdays.is_workday(date(2026, 9, 24)) and not workdays.is_workday(date(2026, 9, 19))


def test_counting_over_the_2026_spring_festival():
    """From Friday 2026-02-13: 2/14 (调休), 2/24–2/27, 2/28 (调休), 3/2–3/6, 3/9–3/12 are the 15."""
    assert workdays.add_workdays(date(2026, 2, 13), 15) == date(2026, 3, 12)
    assert workdays.workdays_between(date(2026, 2, 13), date(2026, 3, 12)) == 15
    assert workdays.workdays_between(date(2026, 2, 13), date(2026, 2, 23)) == 1


def test_the_shipped_file_is_what_the_generator_makes_from_chinese_calendar():
    """The runtime no longer needs the package; the committed file equals its data, so rerunning
    scripts/gen_workday_calendar.py after a package upgrade is the whole update."""
    from scripts.gen_workday_calendar import package_years, render

    text = workdays.SHIPPED_FILE.read_text(encoding="utf-8")
    assert render(parse(text, "shipped")) == text
    assert load().years == package_years()
    assert {2025, 2026} <= set(load().years)


def test_a_year_without_data_counts_weekends_only():
    year = max(load().years) + 1  # the first year the shipped data lacks
    calendar = load()
    for day in _span(date(year, 1, 1), date(year, 12, 31)):
        assert calendar.is_workday(day) is (day.weekday() < 5), day
    # so New Year's Day counts as a working day there, unless it falls on a weekend
    jan1 = date(year, 1, 1)
    assert calendar.is_workday(jan1) is (jan1.weekday() < 5)
    monday = jan1 + timedelta(days=(7 - jan1.weekday()) % 7)
    assert calendar.add_workdays(monday, 15) == monday + timedelta(days=21)


def test_missing_years_look_60_days_ahead():
    last = max(load().years)
    assert load().missing_years(date(last, 11, 1)) == []  # 60 days ahead is still in `last`
    assert load().missing_years(date(last, 11, 2)) == [last + 1]  # 2 November + 60 days = 1 January
    assert load().missing_years(date(last + 1, 3, 1)) == [last + 1]


def test_the_warning_fires_for_a_year_without_data_and_not_before():
    last = max(load().years)
    with structlog.testing.capture_logs() as logs:
        assert workdays.warn_missing_years(None, today=date(last, 6, 1)) == []
    assert logs == []
    with structlog.testing.capture_logs() as logs:
        assert workdays.warn_missing_years(None, today=date(last, 12, 10)) == [last + 1]
    assert logs == [
        {
            "event": "workday_calendar_missing_years",
            "log_level": "warning",
            "years": [last + 1],
            "horizon_days": 60,
        }
    ]


def test_the_app_warns_at_startup(ctx):
    last = max(load().years)
    app = create_app(ctx=ctx)
    set_china_date(date(last, 12, 10))
    with structlog.testing.capture_logs() as logs, TestClient(app):
        pass
    assert [e["years"] for e in logs if e["event"] == "workday_calendar_missing_years"] == [[last + 1]]
    set_china_date(date(last, 6, 1))
    with structlog.testing.capture_logs() as logs, TestClient(app):
        pass
    assert [e for e in logs if e["event"] == "workday_calendar_missing_years"] == []


# Malformed files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[2030\nholidays = []", "not valid TOML"),
        ('[2030]\nholidays = ["2030-01-01"]\nmakeup_workdays = []\n', "'2030-01-01' is not a date"),
        ("[2030]\nholidays = [2030-01-01T08:00:00]\nmakeup_workdays = []\n", "is not a date"),
        ("[2030]\nholidays = [2031-01-01]\nmakeup_workdays = []\n", "2031-01-01 is not in 2030"),
        ("[2030]\nholidays = [2030-01-01, 2030-01-01]\nmakeup_workdays = []\n", "listed twice"),
        ("[2030]\nholidays = 2030-01-01\nmakeup_workdays = []\n", "must be a list of dates"),
        ("[2030]\nholidays = [2030-01-01]\n", "missing: ['makeup_workdays']"),
        ("[2030]\nholidays = []\nmakeup_workdays = []\nworkdays = []\n", "unknown: ['workdays']"),
        ("[y2030]\nholidays = []\nmakeup_workdays = []\n", "[y2030] is not a year"),
        ("2030 = 1\n", "must be a table"),
        ("[2030]\nholidays = [2030-01-05]\nmakeup_workdays = [2030-01-05]\n", "both a holiday and a make-up"),
        ("[2030]\nholidays = []\nmakeup_workdays = [2030-01-07]\n", "2030-01-07 is a weekday"),
    ],
)
def test_a_malformed_file_is_a_clear_error(text, message):
    with pytest.raises(CalendarError) as exc:
        parse(text, "ops.toml")
    assert message in str(exc.value) and str(exc.value).startswith("ops.toml: ")


def test_a_missing_operator_file_is_a_clear_error(tmp_path):
    with pytest.raises(CalendarError, match="cannot read the calendar file"):
        load(tmp_path / "nope.toml")


def test_the_check_exits_1_on_a_malformed_file_and_0_with_a_warning(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[2030]\nholidays = [2030-13-01]\nmakeup_workdays = []\n", encoding="utf-8")
    assert workdays.main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: workday calendar: {bad}: not valid TOML")

    last = max(load().years)
    good = tmp_path / "good.toml"
    good.write_text(VALID, encoding="utf-8")
    assert workdays.main([str(good)], today=date(last, 12, 10)) == 0
    out = capsys.readouterr()
    assert f"WARNING: workday calendar: no data for {last + 1}" in out.err
    assert f"data for 2004–{last}, 2030" in out.out
    assert workdays.main([str(good)], today=date(last, 6, 1)) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_the_app_refuses_to_start_with_a_malformed_operator_file(ctx, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[2030]\nholidays = []\n", encoding="utf-8")
    settings = ctx.settings.model_copy(update={"workday_calendar_file": bad})
    with pytest.raises(CalendarError, match="missing"), TestClient(create_app(ctx=ctx, settings=settings)):
        pass


# The operator's file ----------------------------------------------------------------------------


def test_an_operator_file_adds_a_year_and_replaces_one(tmp_path, monkeypatch):
    last = max(load().years)
    new = last + 1
    jan1 = date(new, 1, 1)
    saturday = jan1 + timedelta(days=(5 - jan1.weekday()) % 7)
    weekday = saturday + timedelta(days=2)  # the Monday after it
    extra = tmp_path / "calendar.toml"
    extra.write_text(
        f"[{new}]\nholidays = [{weekday}]\nmakeup_workdays = [{saturday}]\n"
        "[2026]\nholidays = [2026-03-02]\nmakeup_workdays = []\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HRK_WORKDAY_CALENDAR_FILE", str(extra))
    assert Settings().workday_calendar_file == extra

    calendar = load(Settings().workday_calendar_file)
    assert calendar.years == [*load().years, new]
    assert calendar.is_workday(saturday) and not calendar.is_workday(weekday)
    assert calendar.missing_years(date(last, 12, 10)) == []
    # 2026 is the operator's as a whole: their holiday counts, the shipped ones and 调休 no longer do
    assert not calendar.is_workday(date(2026, 3, 2))
    assert calendar.is_workday(date(2026, 10, 1)) and not calendar.is_workday(date(2026, 2, 14))
    # the shipped calendar is untouched
    assert load().is_workday(weekday) and not load().is_workday(saturday)
    assert not load().is_workday(date(2026, 10, 1))


def test_the_deadline_cap_keeps_a_year_without_data_on_time():
    """Weekends only miss make-up days: from 2026-02-24, without 2026's data the 15th working day is
    3-17, one day after the true 3-16 (2-28 was a 调休 Saturday). The reply deadline, capped at 15
    calendar days, is never later without data than with it."""
    from huirongke.privacy.cases import reply_deadline

    without = WorkdayCalendar(
        {y: s for y, s in parse(workdays.SHIPPED_FILE.read_text(), "x").items() if y != 2026}
    )
    assert load().add_workdays(date(2026, 2, 24), 15) == date(2026, 3, 16)
    assert without.add_workdays(date(2026, 2, 24), 15) == date(2026, 3, 17)
    for day in _span(date(2025, 12, 1), date(2026, 12, 31)):
        assert reply_deadline(without, day) <= reply_deadline(load(), day)
    assert reply_deadline(without, date(2026, 2, 24)) == date(2026, 3, 11)


def test_fifteen_working_days_never_pass_before_fifteen_calendar_days():
    """Why the reply deadline is always the calendar cap today: one working day per calendar day at
    most, so the min() of the two can only ever pick the calendar date."""
    for day in _span(date(2004, 1, 1), date(max(load().years), 12, 31)):
        assert load().add_workdays(day, 15) >= day + timedelta(days=15)
