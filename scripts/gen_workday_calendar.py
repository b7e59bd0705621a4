"""Write src/huirongke/kit/calendar_data/cn_workdays.toml from the `chinese-calendar` package.

Run once per package release, offline: `uv run python scripts/gen_workday_calendar.py`. The package
is a dev dependency only; at run time the service reads the committed file (kit/workdays.py). A year
the package does not know yet is added by hand, or in the operator's own file
(HRK_WORKDAY_CALENDAR_FILE), from the State Council's notice: see docs/operations.md.
"""

from __future__ import annotations

import sys
from datetime import date
from importlib.metadata import version
from itertools import groupby
from pathlib import Path

from chinese_calendar import constants

from huirongke.kit.workdays import SHIPPED_FILE, YearSchedule, parse

HEADER = """\
# PRC public holidays and make-up working days (调休), one table per year, as the State Council
# General Office's yearly notice (国务院办公厅关于××××年部分节假日安排的通知) sets them.
#
#   holidays         every day off of the holiday periods, weekend days inside a break included
#   makeup_workdays  weekend days that are working days (调休上班)
#
# Any other day is a working day from Monday to Friday and a rest day on Saturday and Sunday.
# A year missing here counts weekends only (kit/workdays.py); `python -m huirongke.kit.workdays`
# warns when such a year is near. Generated from chinese-calendar {version} by
# scripts/gen_workday_calendar.py; a new year may be added by hand (see docs/operations.md).
"""


def _dates_line(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def _kept_year(year: int, schedule: YearSchedule) -> str:
    """A year the package does not know, added to the file by hand: kept as it is."""
    holidays, makeup = sorted(schedule.holidays), sorted(schedule.makeup_workdays)
    return "\n".join(
        [
            f"[{year}]  # added by hand from the State Council's notice",
            f"holidays = [{_dates_line(holidays)}]",
            f"makeup_workdays = [{_dates_line(makeup)}]",
        ]
    )


def _year(year: int) -> str:
    holidays = sorted(d for d in constants.holidays if d.year == year)
    makeup = sorted(d for d in constants.workdays if d.year == year)
    lines = [f"[{year}]", "holidays = ["]
    # One line per holiday period, named after the festival.
    for name, group in groupby(holidays, key=lambda d: constants.holidays[d]):
        lines.append(f"  {_dates_line(list(group))},  # {name}")
    lines.append("]")
    if makeup:
        lines.append("makeup_workdays = [")
        for d in makeup:
            lines.append(f"  {d.isoformat()},  # {constants.workdays[d]}")
        lines.append("]")
    else:
        lines.append("makeup_workdays = []")
    return "\n".join(lines)


def package_years() -> list[int]:
    return sorted({d.year for d in constants.holidays} | {d.year for d in constants.workdays})


def render(existing: dict[int, YearSchedule] | None = None) -> str:
    known = package_years()
    kept = {y: s for y, s in (existing or {}).items() if y not in known}
    blocks = {**{y: _year(y) for y in known}, **{y: _kept_year(y, s) for y, s in kept.items()}}
    body = "\n\n".join(blocks[y] for y in sorted(blocks))
    return HEADER.format(version=version("chinese-calendar")) + "\n" + body + "\n"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED_FILE
    existing = parse(out.read_text(encoding="utf-8"), str(out)) if out.exists() else None
    text = render(existing)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
