"""Personal-data stores that are not database tables (log files), declared like data-map columns.

The data map covers tables; these stores hold personal data too (the acting user's id, the client
IP in the service log), so the collection list names them and the retention job prunes them at the
period declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

from huirongke.config import Settings


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
