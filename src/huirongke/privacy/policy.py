"""Policy versions (P01, P24, P41, P43): seeding version 1 from the project's own template,
republishing it when the configured facts change, publishing by hand, agreements, and the check that
gates every other endpoint."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.db import Database, table
from huirongke.kit.errors import AppError, Conflict
from huirongke.kit.ids import new_id
from huirongke.privacy import audit, changes
from huirongke.privacy.models import PolicyAgreement, PolicyVersion

TEMPLATES = Path(__file__).parent / "policy_templates"
PRODUCT_NAME = "汇容客"
CHINA = ZoneInfo("Asia/Shanghai")
log = structlog.get_logger(__name__)
_FRESH_SECONDS = 2.0
_STALE_LIMIT_SECONDS = 30.0
_PUBLISHED = changes.watch_table("policy_versions")
_INSERT_AGREEMENT = insert(table(PolicyAgreement))

#: Every value the template takes from the settings or the code, with the words a change summary
#: uses for it. A start whose values differ from those of the current (template-made) version
#: publishes the same template with the new values (P43).
FACT_LABELS: dict[str, str] = {
    "company_name": "运营者",
    "company_address": "联系地址",
    "hotline": "客服与投诉热线",
    "contact_email": "电子邮箱",
    "jurisdiction_city": "争议管辖法院所在地",
    "cooling_off_days": "注销冷静期（天）",
    "sms_code_ttl_seconds": "短信验证码有效期（秒）",
    "sms_max_attempts": "验证码可输错次数",
    "ask_again_hours": "拒绝权限后不再询问的时长（小时）",
    "reply_days": "答复期限（天）",
    "reply_workdays": "办理期限（工作日）",
    "audit_retention_days": "安全审计记录保存期限（天）",
    "log_retention_days": "服务日志保存期限（天）",
    "backup_retention_days": "备份保存期限（天）",
    "export_interval_hours": "两次导出的最短间隔（小时）",
    "export_ttl_hours": "导出文件的下载有效期（小时）",
    "assessments": "已做个人信息保护影响评估的处理",
    "assessment_keep_years": "影响评估记录保存期限（年）",
}
#: A change of these changes who is responsible for the data, or where disputes go: everyone must
#: agree again. Any other change (contact details, periods the code keeps) is published as a notice.
CONSENT_FACTS = frozenset({"company_name", "jurisdiction_city"})
#: The policy's reply period (calendar days) and R05's (working days): `cases.reply_deadline` keeps
#: the earlier of both (cases.DEADLINE_DAYS, DEADLINE_WORKDAYS; test_policy_claims checks they agree).
REPLY_DAYS = 15
REPLY_WORKDAYS = 15


@dataclass(frozen=True)
class PolicyInfo:
    version: int
    published_at: datetime
    text: str
    changes: str
    requires_consent: bool = True
    #: The latest version that required agreement: an agreement to it, or to any later version, holds.
    consent_version: int = 0


def policy_facts(settings: Settings) -> dict[str, Any]:
    """The values the policy states, taken from the settings and the code that keeps each promise."""
    # Only modules that never import the application context back (tests/test_imports.py): the case
    # deadlines and the log files' period are checked against `cases` and `stores` by
    # tests/privacy/test_policy_claims.py instead.
    from huirongke.privacy import assessments, consent

    return {
        "company_name": settings.company_name,
        "company_address": settings.company_address,
        "hotline": settings.hotline,
        "contact_email": settings.contact_email,
        "jurisdiction_city": settings.jurisdiction_city,
        "cooling_off_days": settings.cancellation_cooling_off_days,
        "sms_code_ttl_seconds": settings.sms_code_ttl_seconds,
        "sms_max_attempts": settings.sms_max_attempts,
        "ask_again_hours": int(consent.ASK_AGAIN_AFTER / timedelta(hours=1)),
        "reply_days": REPLY_DAYS,
        "reply_workdays": REPLY_WORKDAYS,
        "audit_retention_days": settings.audit_retention_days,
        "log_retention_days": settings.log_retention_days,
        "backup_retention_days": settings.backup_retention_days,
        "export_interval_hours": settings.export_interval_hours,
        "export_ttl_hours": settings.export_ttl_hours,
        "assessments": [a.title for a in assessments.INITIAL],
        "assessment_keep_years": assessments.KEEP_YEARS,
    }


def render_text(facts: dict[str, Any], version: int, effective_date: str) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False)
    return env.get_template("policy.md.j2").render(
        **facts, product_name=PRODUCT_NAME, effective_date=effective_date, version=version
    )


def render_policy(settings: Settings, version: int, effective_date: str) -> str:
    return render_text(policy_facts(settings), version, effective_date)


def effective_date(published_at: datetime) -> str:
    """A version takes effect on the day it is published, in Beijing."""
    return published_at.astimezone(CHINA).date().isoformat()


def change_summary(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, bool]:
    """The words users read about a republication, and whether it asks them to agree again."""
    changed = [k for k in FACT_LABELS if old.get(k) != new.get(k)]
    lines = "；".join(f"{FACT_LABELS[k]}：{old.get(k, '—')} → {new.get(k)}" for k in changed)
    requires = bool(CONSENT_FACTS & set(changed))
    tail = "运营者或争议管辖发生变化，请阅读后重新同意。" if requires else "本次更新无需您重新同意。"
    return f"根据运营配置更新：{lines}。{tail}", requires


def _audit_published(session: Session) -> None:
    """A new policy version: what every user is asked to agree to changed (an operator's or the
    start-up's act, no user's)."""
    audit.record(
        session,
        "policy.published",
        actor_type="system",
        actor_id=None,
        subject_id=None,
        fields=["policy_versions.version"],
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
        """At start-up: publish version 1 from the template, or, when the current version was made from
        the template and the values it states have changed since (P43), the same template with the
        new values, asking users to agree again only where `CONSENT_FACTS` changed."""
        facts = policy_facts(settings)
        latest = session.scalar(select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1))
        if latest is None:
            self._publish_generated(session, 1, facts, "首次发布", requires_consent=True)
            return
        if latest.facts is None or latest.facts == facts:
            return  # a text published by hand stays as written; or nothing changed
        try:
            same_template = render_text(latest.facts, latest.version, effective_date(latest.published_at))
        except TemplateError:
            same_template = None
        if same_template != latest.text:
            # The template's wording changed too: that is a new policy, published by hand.
            log.warning("policy_not_republished", version=latest.version, reason="template_changed")
            return
        summary, requires = change_summary(latest.facts, facts)
        self._publish_generated(session, latest.version + 1, facts, summary, requires_consent=requires)

    def _publish_generated(
        self, session: Session, version: int, facts: dict[str, Any], summary: str, *, requires_consent: bool
    ) -> None:
        now = utcnow()
        row = PolicyVersion(
            version=version,
            text=render_text(facts, version, effective_date(now)),
            changes=summary,
            published_at=now,
            requires_consent=requires_consent,
            facts=facts,
        )
        try:
            with session.begin_nested():  # another process starting at once may have published it
                session.add(row)
        except IntegrityError:
            log.info("policy_published_elsewhere", version=version)
            return
        _audit_published(session)
        self.invalidate()
        log.info("policy_published", version=version, requires_consent=requires_consent)

    def publish_template(self, session: Session, settings: Settings, changes: str) -> PolicyVersion:
        """The project's template with the current facts, published by an operator (a new wording, e.g.
        after an upgrade): everyone must agree to it, and later fact changes republish it (P43)."""
        if not changes.strip():
            raise AppError("请说明本次变更的内容", code="empty_changes", status=422)
        latest = session.scalar(select(func.max(PolicyVersion.version))) or 0
        facts = policy_facts(settings)
        self._publish_generated(session, latest + 1, facts, changes.strip(), requires_consent=True)
        row = session.get(PolicyVersion, latest + 1)
        assert row is not None
        return row

    def publish(self, session: Session, text: str, changes: str) -> PolicyVersion:
        """A text published by hand: everyone must agree to it."""
        if not text.strip():
            raise AppError("政策文本不能为空", code="empty_policy", status=422)
        latest = session.scalar(select(func.max(PolicyVersion.version))) or 0
        row = PolicyVersion(
            version=latest + 1,
            text=text,
            changes=changes.strip(),
            published_at=utcnow(),
            requires_consent=True,
            facts=None,
        )
        session.add(row)
        session.flush()
        _audit_published(session)
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
        consent_version = session.scalar(
            select(func.max(PolicyVersion.version)).where(PolicyVersion.requires_consent.is_(True))
        )
        info = PolicyInfo(
            row.version,
            row.published_at,
            row.text,
            row.changes,
            row.requires_consent,
            consent_version or row.version,
        )
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
        audit.user_action(session, user_id, "policy.agreed", ["policy_agreements.version"], purpose="account")
        return PolicyAgreement(**values)

    @staticmethod
    def agreements(session: Session, user_id: str) -> list[PolicyAgreement]:
        q = (
            select(PolicyAgreement)
            .where(PolicyAgreement.user_id == user_id)
            .order_by(PolicyAgreement.agreed_at)
        )
        return list(session.scalars(q))
