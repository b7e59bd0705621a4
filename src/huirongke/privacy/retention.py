"""Retention (P16): when a category's period ends, its data is deleted or de-identified.

Each column's retention comes from the data map ("P1D", "P180D", …; "account" means while the
account exists). A periodic job applies each column's erasure fate to rows whose clock column is
older than the period: a `delete` column removes the row, an `anonymize` column is cleared.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import delete, update

from huirongke.context import AppContext
from huirongke.kit.clock import utcnow
from huirongke.kit.jobs import job
from huirongke.privacy import audit, registry, stores
from huirongke.privacy.registry import retention_delta

log = structlog.get_logger(__name__)


@dataclass
class RetentionResult:
    table: str
    column: str
    action: str
    rows: int


def apply(ctx: AppContext) -> list[RetentionResult]:
    results: list[RetentionResult] = []
    now = utcnow()
    with ctx.db.session() as s:
        for t in registry.tables():
            if t.clock_column is None:
                continue
            clock_col = t.table.c[t.clock_column]
            for c in t.columns:
                if not c.cls.personal:
                    continue
                period = retention_delta(c.cls.retention)
                if period is None:
                    continue
                cutoff = now - period
                if c.cls.erasure == "delete" or not c.column.nullable:
                    for fc in t.file_columns:  # the files a row names go with the row
                        for key in s.scalars(
                            t.table.select().with_only_columns(t.table.c[fc.name]).where(clock_col < cutoff)
                        ):
                            if key:
                                ctx.storage.delete(key)
                    res = s.execute(delete(t.table).where(clock_col < cutoff))
                    action = "delete"
                elif c.cls.erasure == "anonymize":
                    res = s.execute(
                        update(t.table)
                        .where(clock_col < cutoff, t.table.c[c.name].is_not(None))
                        .values({c.name: None})
                    )
                    action = "anonymize"
                else:
                    continue
                n = int(res.rowcount or 0)  # type: ignore[attr-defined]
                if n:
                    results.append(RetentionResult(t.name, c.name, action, n))
        # The audit log itself is pruned after its own (configurable, ≥ 6 months) period.
        pruned = audit.prune(s, ctx.settings.audit_retention_days)
        if pruned:
            results.append(RetentionResult("audit_events", "*", "delete", pruned))
        results += stores.prune_logs(ctx.settings)  # rotated log files past their period
        if results:
            audit.record(
                s,
                "retention.applied",
                actor_type="system",
                actor_id="retention",
                subject_id=None,
                fields=[f"{r.table}.{r.column}" for r in results],
                purpose="security",
            )
    for r in results:
        log.info("retention_applied", table=r.table, column=r.column, action=r.action, rows=r.rows)
    return results


@job("privacy.retention", every_minutes=60)
def retention_job(ctx: AppContext) -> int:
    return len(apply(ctx))
