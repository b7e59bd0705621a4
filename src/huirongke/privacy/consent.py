"""Consent (P05–P07, P12, P23, P33, P40, R02–R04): the ledger, the purpose gate, withdrawal with
deletion of data held only for the withdrawn purpose, and permission prompts (48 h after refusal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from huirongke.kit.clock import utcnow
from huirongke.kit.errors import AppError, NotFound, PreconditionRequired
from huirongke.privacy import audit, changes, registry
from huirongke.privacy.models import ConsentEvent, PermissionEvent
from huirongke.privacy.purposes import PURPOSES, Purpose

PERMISSIONS = {
    "location": "位置",
    "contacts": "通讯录",
    "camera": "相机",
    "microphone": "麦克风",
    "album": "相册",
    "clipboard": "剪切板",
    "sms": "短信",
    "storage": "存储",
    "notifications": "通知",
}
ASK_AGAIN_AFTER = timedelta(hours=48)
PermissionEventKind = Literal["granted", "denied", "revoked"]


@dataclass(frozen=True)
class ConsentState:
    purpose: Purpose
    granted: bool
    updated_at: datetime | None


def _latest(session: Session, user_id: str, purpose: str) -> ConsentEvent | None:
    return session.scalar(
        select(ConsentEvent)
        .where(ConsentEvent.user_id == user_id, ConsentEvent.purpose == purpose)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.id.desc())
        .limit(1)
    )


def is_granted(session: Session, user_id: str, purpose_key: str) -> bool:
    purpose = PURPOSES[purpose_key]
    if not purpose.needs_consent:
        return True
    event = _latest(session, user_id, purpose_key)
    return bool(event and event.granted)


def states(session: Session, user_id: str) -> list[ConsentState]:
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.user_id == user_id).order_by(ConsentEvent.at, ConsentEvent.id)
    )
    latest = {e.purpose: e for e in events}
    out = []
    for p in PURPOSES.values():
        if not p.needs_consent:
            continue
        e = latest.get(p.key)
        out.append(ConsentState(p, bool(e and e.granted), e.at if e else None))
    return out


def set_consent(
    session: Session, user_id: str, purpose_key: str, granted: bool, policy_version: int, channel: str = "app"
) -> ConsentState:
    purpose = PURPOSES.get(purpose_key)
    if purpose is None:
        raise NotFound("没有这一项用途", code="purpose_not_found")
    if not purpose.needs_consent:
        raise AppError(
            "该用途是提供服务所必需的，无需单独同意；如不希望继续，可注销账号",
            code="consent_not_applicable",
            status=409,
        )
    current = _latest(session, user_id, purpose_key)
    if current is not None and current.granted == granted:
        return ConsentState(purpose, granted, current.at)
    now = utcnow()
    session.add(
        ConsentEvent(
            user_id=user_id,
            purpose=purpose_key,
            granted=granted,
            policy_version=policy_version,
            channel=channel,
            at=now,
        )
    )
    removed: list[str] = []
    if not granted:
        removed = delete_purpose_data(session, user_id, purpose_key)
    audit.user_action(
        session,
        user_id,
        "consent.granted" if granted else "consent.withdrawn",
        fields=removed,
        purpose=purpose_key,
    )
    session.flush()
    return ConsentState(purpose, granted, now)


def delete_purpose_data(session: Session, user_id: str, purpose_key: str) -> list[str]:
    """P33: on withdrawal, delete what was held only for that purpose. Returns the columns touched.
    Only the user's own data is touched: the columns of the subjects that reach the user."""
    touched: list[str] = []
    who = registry.Who(user_id=user_id)
    for t in registry.personal_tables():
        for sub in t.subjects:
            where = t.where(sub, who)
            if where is None:
                continue
            mine = t.columns_of(sub)
            only = [c for c in mine if c.cls.purposes and set(c.cls.purposes) <= {purpose_key}]
            if not only:
                continue
            link = set(t.link_columns(sub))
            others = [c for c in mine if c not in only and c.name not in link]
            if not others and sub is t.subjects[0]:
                session.execute(delete(t.table).where(where), execution_options=changes.of(user_id))
            else:
                nullable = [c for c in only if c.column.nullable]
                if not nullable:
                    continue
                session.execute(
                    update(t.table).where(where).values({c.name: None for c in nullable}),
                    execution_options=changes.of(user_id),
                )
            touched += [f"{t.name}.{c.name}" for c in only]
    return touched


# Permission prompts (R03) -------------------------------------------------------------------------


@dataclass(frozen=True)
class PermissionState:
    permission: str
    state: str  # unknown | granted | denied | revoked
    may_ask: bool
    ask_after: datetime | None


def record_permission(
    session: Session, user_id: str, permission: str, event: PermissionEventKind
) -> PermissionState:
    if permission not in PERMISSIONS:
        raise NotFound("没有这项系统权限", code="permission_not_found")
    session.add(PermissionEvent(user_id=user_id, permission=permission, event=event, at=utcnow()))
    audit.user_action(session, user_id, f"permission.{event}", ["permission_events.event"])
    session.flush()
    return permission_state(session, user_id, permission)


def permission_state(session: Session, user_id: str, permission: str) -> PermissionState:
    if permission not in PERMISSIONS:
        raise NotFound("没有这项系统权限", code="permission_not_found")
    last = session.scalar(
        select(PermissionEvent)
        .where(PermissionEvent.user_id == user_id, PermissionEvent.permission == permission)
        .order_by(PermissionEvent.at.desc(), PermissionEvent.id.desc())
        .limit(1)
    )
    if last is None:
        return PermissionState(permission, "unknown", True, None)
    if last.event == "granted":
        return PermissionState(permission, "granted", False, None)
    ask_after = last.at + ASK_AGAIN_AFTER
    return PermissionState(permission, last.event, utcnow() >= ask_after, ask_after)


def permission_active(session: Session, user_id: str, permission: str) -> bool:
    """P40: collection through a permission happens only while its latest report is `granted`."""
    return permission_state(session, user_id, permission).state == "granted"


def check_permission(session: Session, user_id: str, permission: str) -> None:
    """P40: refuse collection through `permission` unless the client's latest report for it is
    `granted`: after `revoked` or `denied` (or before any report) the answer is 428
    `permission_required`, and a new `granted` report opens it again at once."""
    if permission_active(session, user_id, permission):
        return
    state = permission_state(session, user_id, permission)
    label = PERMISSIONS[permission]
    raise PreconditionRequired(
        f"{label}权限未授权或已被撤回，不能通过它收集信息；请在系统设置中授权后再试",
        code="permission_required",
        details={
            "permission": permission,
            "label": label,
            "state": state.state,
            "may_ask": state.may_ask,
            "ask_after": state.ask_after.isoformat() if state.ask_after else None,
        },
    )
