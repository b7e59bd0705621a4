"""Policy versions (P01, P24, P41): seeding version 1 from the project's own template, publishing,
agreements, and the check that gates every other endpoint."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.errors import AppError, Conflict
from huirongke.privacy.models import PolicyAgreement, PolicyVersion

TEMPLATES = Path(__file__).parent / "policy_templates"
_CACHE_SECONDS = 2.0


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
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[float, PolicyInfo] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._current = None

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
        if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1].version
        return None

    def current(self, session: Session) -> PolicyInfo:
        now = time.monotonic()
        with self._lock:
            cached = self._current
        if cached and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        row = session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
        if row is None:
            raise AppError("隐私政策尚未发布", code="policy_missing", status=503)
        info = PolicyInfo(row.version, row.published_at, row.text, row.changes)
        with self._lock:
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
        row = PolicyAgreement(user_id=user_id, version=version, channel=channel, agreed_at=utcnow())
        session.add(row)
        return row

    @staticmethod
    def agreements(session: Session, user_id: str) -> list[PolicyAgreement]:
        q = (
            select(PolicyAgreement)
            .where(PolicyAgreement.user_id == user_id)
            .order_by(PolicyAgreement.agreed_at)
        )
        return list(session.scalars(q))
