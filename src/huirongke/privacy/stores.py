"""Personal-data stores that are not database tables (log files), declared like data-map columns.

The data map covers tables; these stores hold personal data too (the service log names the acting
user's id on each request line), so the collection list names them and the retention job prunes them
at the period declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.logging import rotated_files
from huirongke.privacy.registry import retention_delta

if TYPE_CHECKING:
    from huirongke.privacy.retention import RetentionResult

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DataStore:
    key: str
    category: str
    label: str
    purposes: tuple[str, ...]
    retention: str  # the data map's format: "P184D", "P3Y", ...
    sensitive: bool = False
    encrypted: bool = False


def declared(settings: Settings) -> list[DataStore]:
    """Every non-table store of personal data, with its retention as configured."""
    return [
        DataStore(
            key="log_files",
            category="system.logs",
            label="服务日志",
            purposes=("security", "basic_operation"),
            retention=f"P{settings.log_retention_days}D",
        )
    ]


def prune_logs(settings: Settings) -> list[RetentionResult]:
    """Delete rotated log files whose last line is older than the log files' period. The live file
    is never deleted: it is rotated at UTC midnight, so no line in it is older than a day."""
    from huirongke.privacy.retention import RetentionResult  # retention imports this module

    store = next(s for s in declared(settings) if s.key == "log_files")
    period = retention_delta(store.retention)
    assert period is not None
    cutoff = (utcnow() - period).timestamp()
    deleted = 0
    for path in rotated_files(settings.resolved_log_file):
        try:
            if path.stat().st_mtime < cutoff:  # the file's last write: its newest line
                path.unlink()
                deleted += 1
        except FileNotFoundError:  # another process pruned it first
            continue
        except OSError as exc:  # tried again at the next run; the database's retention goes on
            log.warning("log_prune_failed", file=path.name, error=type(exc).__name__)
    return [RetentionResult(store.key, "*", "delete", deleted)] if deleted else []
