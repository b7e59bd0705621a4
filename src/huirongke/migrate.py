"""Run Alembic migrations from code (serve and the tests call this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPTS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, master_key: Path | None = None, target: str = "head") -> None:
    """`master_key`: the key ring file for data migrations that seal existing values (0003); by default
    the one the settings name, `<HRK_DATA_DIR>/keys/master.key`. Read only when a migration needs it."""
    cfg = alembic_config(url)
    if master_key is not None:
        cfg.attributes["master_key"] = master_key
    command.upgrade(cfg, target)


def revision(url: str, message: str) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)
