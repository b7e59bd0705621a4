"""Policy versions (P01, P24, P41): seeding version 1 from the project's own template, publishing,
agreements, and the check that gates every other endpoint."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.db import Database, table
from huirongke.kit.errors import AppError, Conflict
from huirongke.kit.ids import new_id
from huirongke.privacy import changes
from huirongke.privacy.models import PolicyAgreement, PolicyVersion

TEMPLATES = Path(__file__).parent / "policy_templates"
log = structlog.get_logger(__name__)
_FRESH_SECONDS = 2.0
_STALE_LIMIT_SECONDS = 30.0
_PUBLISHED = changes.watch_table("policy_versions")
_INSERT_AGREEMENT = insert(table(PolicyAgreement))


@dataclass(frozen=True)
class PolicyInfo:
    version: int
    published_at: datetime
    text: str
    changes: str


def render_policy(settings: Settings, version: int, effective_date: str) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False)
    return env.get_template("policy.md.j2").render(
        company_name=settings.company_name,
        product_name="汇容客",
        hotline=settings.hotline,
        contact_email=settings.contact_email,
        jurisdiction_city=settings.jurisdiction_city,
        company_address=settings.company_address,
        effective_date=effective_date,
        version=version,
        cooling_off_days=settings.cancellation_cooling_off_days,
    )


class PolicyService:
    """The current version, kept per process: every authenticated request checks it.

    A publication anywhere (this process, or another through the Redis relay) drops it at once. Past
    `_FRESH_SECONDS` the next request still gets the known version while one background thread asks
    the database again (so a publication from a process no announcement reaches, e.g. the CLI beside
    `make serve` on SQLite, takes effect within about two seconds, and no request waits for it). Past
    `_STALE_LIMIT_SECONDS` (the refresh keeps failing) requests ask the database themselves."""

    def __init__(self, db: Database | None = None) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._current: tuple[float, PolicyInfo] | None = None
        self._generation = 0  # bumped by every invalidation: a load that raced one is not kept
        self._refreshing = False
        changes.subscribe(self)

    def subjects_changed(self, ids: frozenset[str]) -> None:
        if _PUBLISHED in ids or changes.ALL in ids:
            self.invalidate()

    def invalidate(self) -> None:
        with self._lock:
            self._current = None
            self._generation += 1

    def ensure_seeded(self, session: Session, settings: Settings) -> None:
        if session.scalar(select(func.count()).select_from(PolicyVersion)):
            return
        now = utcnow()
        text = render_policy(settings, 1, now.date().isoformat())
        session.add(PolicyVersion(version=1, text=text, changes="首次发布", published_at=now))
        session.flush()

    def publish(self, session: Session, text: str, changes: str) -> PolicyVersion:
        if not text.strip():
            raise AppError("政策文本不能为空", code="empty_policy", status=422)
        latest = session.scalar(select(func.max(PolicyVersion.version))) or 0
        row = PolicyVersion(version=latest + 1, text=text, changes=changes.strip(), published_at=utcnow())
        session.add(row)
        session.flush()
        self.invalidate()
        return row

    def cached_version(self) -> int | None:
        """The current version if known without asking the database, else None."""
        cached = self._current
        if cached is None:
            return None
        age = time.monotonic() - cached[0]
        if age < _FRESH_SECONDS:
            return cached[1].version
        if age < _STALE_LIMIT_SECONDS and self._db is not None:
            self._refresh_in_background()
            return cached[1].version
        return None

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="policy-refresh", daemon=True).start()

    def _refresh(self) -> None:
        assert self._db is not None
        try:
            with self._db.session(write=False) as session:
                self._load(session)
        except Exception as exc:  # the next request tries again; past the limit requests ask themselves
            log.warning("policy_refresh_failed", error_type=type(exc).__name__)
        finally:
            with self._lock:
                self._refreshing = False

    def current(self, session: Session) -> PolicyInfo:
        cached = self._current
        if cached and time.monotonic() - cached[0] < _FRESH_SECONDS:
            return cached[1]
        return self._load(session)

    def _load(self, session: Session) -> PolicyInfo:
        with self._lock:
            generation = self._generation
        now = time.monotonic()
        row = session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
        if row is None:
            raise AppError("隐私政策尚未发布", code="policy_missing", status=503)
        info = PolicyInfo(row.version, row.published_at, row.text, row.changes)
        with self._lock:
            if generation == self._generation:
                self._current = (now, info)
        return info

    def history(self, session: Session) -> list[PolicyVersion]:
        return list(session.scalars(select(PolicyVersion).order_by(PolicyVersion.version.desc())))

    @staticmethod
    def has_agreed(session: Session, user_id: str, version: int) -> bool:
        q = select(PolicyAgreement.id).where(
            PolicyAgreement.user_id == user_id, PolicyAgreement.version == version
        )
        return session.scalar(q.limit(1)) is not None

    def agree(
        self, session: Session, user_id: str, version: int, channel: str = "app", *, new_user: bool = False
    ) -> PolicyAgreement:
        current = self.current(session)
        if version != current.version:
            raise Conflict(
                "您同意的不是最新版本的隐私政策，请刷新后重新阅读",
                code="policy_version_mismatch",
                details={"current_version": current.version},
            )
        existing = (
            None  # a user registered in this transaction has agreed to nothing yet
            if new_user
            else session.scalar(
                select(PolicyAgreement).where(
                    PolicyAgreement.user_id == user_id, PolicyAgreement.version == version
                )
            )
        )
        if existing:
            return existing
        values = {
            "id": new_id(),
            "user_id": user_id,
            "version": version,
            "channel": channel,
            "agreed_at": utcnow(),
        }
        # One statement, no unit-of-work flush: every registration agrees. Returns the row as inserted.
        session.execute(_INSERT_AGREEMENT, values, execution_options=changes.of(user_id))
        return PolicyAgreement(**values)

    @staticmethod
    def agreements(session: Session, user_id: str) -> list[PolicyAgreement]:
        q = (
            select(PolicyAgreement)
            .where(PolicyAgreement.user_id == user_id)
            .order_by(PolicyAgreement.agreed_at)
        )
        return list(session.scalars(q))
