"""Static checks that `make lint` runs beside ruff and mypy.

Raw SQL that writes to a table of the data map escapes the session's tracking: no cache hears of it
and the link model cannot name its subject (see `privacy.changes`). This finds such statements in the
source: string SQL passed to `text()` or `exec_driver_sql()` that inserts, updates or deletes rows of
a mapped table. A deliberate one carries `# raw-sql-ok: <reason>` on its line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from huirongke.privacy import changes

_ALLOW = "raw-sql-ok:"


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    tables: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: raw SQL writes to {', '.join(self.tables)} (use the session)"


def _sql_of(node: ast.Call) -> str | None:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in ("text", "exec_driver_sql") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):  # f-strings: the literal parts, placeholders as a name
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else " x " for v in arg.values
        )
    return None


def raw_writes(path: Path, source: str, mapped: set[str]) -> Iterator[Finding]:
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, str(path))):
        if not isinstance(node, ast.Call):
            continue
        sql = _sql_of(node)
        if sql is None:
            continue
        hit = changes.raw_write_tables(sql) & mapped
        if hit and _ALLOW not in lines[node.lineno - 1]:
            yield Finding(path, node.lineno, tuple(sorted(hit)))


def mapped_tables() -> set[str]:
    from huirongke.privacy import registry

    return {t.name for t in registry.tables()}


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).parent
    mapped = mapped_tables()
    found = [f for p in sorted(root.rglob("*.py")) for f in raw_writes(p, p.read_text("utf-8"), mapped)]
    for f in found:
        print(f)
    if found:
        print(f"{len(found)} raw SQL write(s) to mapped tables", file=sys.stderr)
        return 1
    print(f"raw SQL check: no writes to the {len(mapped)} mapped tables outside the session")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
