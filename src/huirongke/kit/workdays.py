"""PRC working days: public holidays and make-up working days (调休) from a data file in the project.

`calendar_data/cn_workdays.toml` holds, per year, the days off that the State Council's yearly notice
grants (`holidays`) and the weekend days it makes working days (`makeup_workdays`). An operator adds
a year the file does not have yet with a file of the same format (`HRK_WORKDAY_CALENDAR_FILE`); a
year in that file replaces the shipped year as a whole.

A year with data in neither file counts weekends only as non-working days: its holidays are missed,
and so are its make-up working days. `missing_years` names such years near today; the app logs a
warning at startup and `python -m huirongke.kit.workdays` (run by `make lint`) prints one. The reply
deadline of privacy cases never depends on that count alone: it is capped at 15 calendar days
(privacy/cases.py), so it comes no later than the policy promises whatever the data.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import structlog

from huirongke.kit.clock import china_today

SHIPPED_FILE = Path(__file__).parent / "calendar_data" / "cn_workdays.toml"
#: How far ahead startup and `make lint` look for a year without data.
HORIZON_DAYS = 60
_KEYS = {"holidays", "makeup_workdays"}

log = structlog.get_logger(__name__)


class CalendarError(ValueError):
    """A calendar data file that cannot be read or does not follow the format."""


@dataclass(frozen=True)
class YearSchedule:
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]


def _dates(source: str, year: int, key: str, value: object) -> frozenset[date]:
    where = f"{source}: [{year}] {key}"
    if not isinstance(value, list):
        raise CalendarError(f"{where} must be a list of dates (YYYY-MM-DD), got {type(value).__name__}")
    days: set[date] = set()
    for item in value:
        if isinstance(item, datetime) or not isinstance(item, date):
            raise CalendarError(f"{where}: {item!r} is not a date (write YYYY-MM-DD without quotes)")
        if item.year != year:
            raise CalendarError(f"{where}: {item.isoformat()} is not in {year}")
        if item in days:
            raise CalendarError(f"{where}: {item.isoformat()} is listed twice")
        days.add(item)
    return frozenset(days)


def parse(text: str, source: str) -> dict[int, YearSchedule]:
    """The years a calendar file defines; `CalendarError` names the file and the first fault."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CalendarError(f"{source}: not valid TOML: {e}") from None
    years: dict[int, YearSchedule] = {}
    for key, table in doc.items():
        if not (len(key) == 4 and key.isdigit()):
            raise CalendarError(f"{source}: [{key}] is not a year; each table is named [YYYY]")
        year = int(key)
        if not isinstance(table, dict):
            raise CalendarError(f"{source}: {key} must be a table [{key}] with holidays and makeup_workdays")
        if set(table) != _KEYS:
            unknown, missing = sorted(set(table) - _KEYS), sorted(_KEYS - set(table))
            raise CalendarError(
                f"{source}: [{key}] needs exactly holidays and makeup_workdays"
                f" (unknown: {unknown or 'none'}, missing: {missing or 'none'})"
            )
        holidays = _dates(source, year, "holidays", table["holidays"])
        makeup = _dates(source, year, "makeup_workdays", table["makeup_workdays"])
        if both := sorted(holidays & makeup):
            raise CalendarError(
                f"{source}: [{key}] {both[0].isoformat()} is both a holiday and a make-up working day"
            )
        if weekdays := sorted(d for d in makeup if d.weekday() < 5):
            raise CalendarError(
                f"{source}: [{key}] makeup_workdays: {weekdays[0].isoformat()} is a weekday;"
                " only a Saturday or Sunday can be a make-up working day"
            )
        years[year] = YearSchedule(holidays, makeup)
    return years


def _read(path: Path) -> dict[int, YearSchedule]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CalendarError(f"{path}: cannot read the calendar file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise CalendarError(f"{path}: not UTF-8 text") from None
    return parse(text, str(path))


class WorkdayCalendar:
    def __init__(self, years: Mapping[int, YearSchedule]) -> None:
        self._years = dict(years)

    @property
    def years(self) -> list[int]:
        return sorted(self._years)

    def is_workday(self, day: date) -> bool:
        schedule = self._years.get(day.year)
        if schedule is not None:
            if day in schedule.makeup_workdays:
                return True
            if day in schedule.holidays:
                return False
        return day.weekday() < 5

    def add_workdays(self, start: date, n: int) -> date:
        """The date on which `n` full working days after `start` have passed (start not counted)."""
        day, remaining = start, n
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_workday(day):
                remaining -= 1
        return day

    def workdays_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_workday(day)
        return count

    def missing_years(self, today: date, horizon_days: int = HORIZON_DAYS) -> list[int]:
        """Years from today to `horizon_days` ahead that have no data."""
        last = today + timedelta(days=horizon_days)
        return [y for y in range(today.year, last.year + 1) if y not in self._years]


@lru_cache
def load(extra_file: Path | None = None) -> WorkdayCalendar:
    """The shipped data, with the years of `extra_file` (HRK_WORKDAY_CALENDAR_FILE) over it."""
    years = _read(SHIPPED_FILE)
    if extra_file is not None:
        years.update(_read(Path(extra_file)))
    return WorkdayCalendar(years)


def warn_missing_years(extra_file: Path | None, today: date | None = None) -> list[int]:
    """Log a warning (no personal data) naming the years near `today` without data; at startup."""
    today = today or china_today()
    missing = load(extra_file).missing_years(today)
    if missing:
        log.warning("workday_calendar_missing_years", years=missing, horizon_days=HORIZON_DAYS)
    return missing


# The shipped calendar alone, for callers without settings.
def is_workday(day: date) -> bool:
    return load().is_workday(day)


def add_workdays(start: date, n: int) -> date:
    return load().add_workdays(start, n)


def workdays_between(start: date, end: date) -> int:
    return load().workdays_between(start, end)


def _spans(years: list[int]) -> list[str]:
    """[2004, 2005, 2006, 2009] -> ["2004–2006", "2009"]."""
    spans: list[list[int]] = []
    for y in years:
        if spans and spans[-1][1] == y - 1:
            spans[-1][1] = y
        else:
            spans.append([y, y])
    return [f"{a}–{b}" if a != b else str(a) for a, b in spans] or ["no year"]


def main(argv: list[str] | None = None, today: date | None = None) -> int:
    """`python -m huirongke.kit.workdays [FILE]`: check the data (shipped, plus FILE or the setting
    HRK_WORKDAY_CALENDAR_FILE). Exit 1 on a malformed file; a missing year near today is only a
    warning (exit 0), so `make lint` keeps passing until the State Council publishes the year."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        extra: Path | None = Path(args[0])
    else:
        from huirongke.config import get_settings

        extra = get_settings().workday_calendar_file
    try:
        calendar = load(extra)
    except CalendarError as e:
        print(f"ERROR: workday calendar: {e}", file=sys.stderr)
        return 1
    today = today or china_today()
    source = SHIPPED_FILE.name + (f" + {extra}" if extra else "")
    print(f"workday calendar ({source}): data for {', '.join(_spans(calendar.years))}")
    for year in calendar.missing_years(today):
        print(
            f"WARNING: workday calendar: no data for {year}, within {HORIZON_DAYS} days of {today}:"
            f" weekends only are rest days there. Add [{year}] from the State Council's notice"
            " (docs/operations.md, Working-day calendar).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
