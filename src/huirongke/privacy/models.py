"""Privacy-engine tables: subject data keys, policy versions and agreements."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SECRET, Subject, SubjectLink, pii


class DataKey(Base):
    """A subject's wrapped data key. Deleting it is crypto-shredding (R13)."""

    __tablename__ = "data_keys"
    __subject__ = SubjectLink("subject_id", label="数据密钥")

    subject_id: Mapped[str] = mapped_column(
        String(32), primary_key=True, info=pii("user.id", "用户标识", purposes=["account"])
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, info=SECRET)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    __subject__ = SubjectLink(None)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, info=NOT_PERSONAL)
    text: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    changes: Mapped[str] = mapped_column(Text, default="", info=NOT_PERSONAL)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    #: Whether users must agree to this version (else an agreement to an earlier one still holds).
    requires_consent: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=sa_true(), info=NOT_PERSONAL
    )
    #: The setting-derived values the template was rendered with; None for a text published by hand.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, info=NOT_PERSONAL)


class PolicyAgreement(Base):
    """Append-only history of which policy version a user agreed to, when, and through which channel."""

    __tablename__ = "policy_agreements"
    __subject__ = SubjectLink("user_id", label="隐私政策同意记录")
    __table_args__ = (Index("ix_policy_agreements_user_version", "user_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        info=pii("user.id", "用户标识", purposes=["account"], erasure="keep"),
    )
    version: Mapped[int] = mapped_column(ForeignKey("policy_versions.version"), info=NOT_PERSONAL)
    channel: Mapped[str] = mapped_column(String(16), default="app", info=NOT_PERSONAL)
    agreed_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        info=pii("user.consent.policy", "同意隐私政策的记录", purposes=["account"], erasure="keep"),
    )


class ConsentEvent(Base):
    """The consent ledger: append-only. The current state of a purpose is its latest event.
    Kept after erasure as proof of consent; by then the user id points at an empty tombstone."""

    __tablename__ = "consent_events"
    __subject__ = SubjectLink("user_id", label="授权同意记录")
    __table_args__ = (Index("ix_consent_events_user_purpose_at", "user_id", "purpose", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        info=pii("user.id", "用户标识", purposes=["account"], erasure="keep"),
    )
    purpose: Mapped[str] = mapped_column(String(40), info=NOT_PERSONAL)
    granted: Mapped[bool] = mapped_column(Boolean, info=NOT_PERSONAL)
    policy_version: Mapped[int] = mapped_column(Integer, info=NOT_PERSONAL)
    channel: Mapped[str] = mapped_column(String(16), default="app", info=NOT_PERSONAL)
    at: Mapped[datetime] = mapped_column(
        UTCDateTime, info=pii("user.consent.record", "同意与撤回记录", purposes=["account"], erasure="keep")
    )


class PermissionEvent(Base):
    """What the client reports about OS permissions (R03, P40): granted, denied or revoked."""

    __tablename__ = "permission_events"
    __subject__ = SubjectLink("user_id", label="系统权限记录")
    __table_args__ = (Index("ix_permission_events_user_perm_at", "user_id", "permission", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info=pii("user.id", "用户标识", purposes=["account"])
    )
    permission: Mapped[str] = mapped_column(String(24), info=NOT_PERSONAL)
    event: Mapped[str] = mapped_column(String(16), info=NOT_PERSONAL)
    at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        info=pii("device.permission", "系统权限授权记录", purposes=["account"], retention="P180D"),
    )


class AuditEvent(Base):
    """Append-only, hash-chained audit log (P10, P19, R10): who did what to whose data, never values."""

    __tablename__ = "audit_events"
    __subject__ = SubjectLink(None)  # subject ids are pseudonymous and kept for the legal period
    __table_args__ = (Index("ix_audit_events_subject", "subject_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, info=NOT_PERSONAL)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True, info=NOT_PERSONAL)
    actor_type: Mapped[str] = mapped_column(String(16), info=NOT_PERSONAL)
    actor_id: Mapped[str | None] = mapped_column(
        String(64),
        info=pii("audit.actor", "操作者标识", purposes=["security"], retention="audit", erasure="keep"),
    )
    subject_id: Mapped[str | None] = mapped_column(
        String(32),
        info=pii("audit.subject", "被操作用户标识", purposes=["security"], retention="audit", erasure="keep"),
    )
    action: Mapped[str] = mapped_column(String(64), info=NOT_PERSONAL)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list, info=NOT_PERSONAL)
    purpose: Mapped[str | None] = mapped_column(String(40), info=NOT_PERSONAL)
    request_id: Mapped[str | None] = mapped_column(String(64), info=NOT_PERSONAL)
    prev_hash: Mapped[str] = mapped_column(String(64), info=NOT_PERSONAL)
    hash: Mapped[str] = mapped_column(String(64), info=NOT_PERSONAL)


class AuditHead(Base):
    """The chain head. Updating it first serialises audited transactions on every backend."""

    __tablename__ = "audit_head"
    __subject__ = SubjectLink(None)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, info=NOT_PERSONAL)
    seq: Mapped[int] = mapped_column(Integer, info=NOT_PERSONAL)
    hash: Mapped[str] = mapped_column(String(64), info=NOT_PERSONAL)
    #: The last sequence number removed by retention: the chain must start right after it.
    pruned_through: Mapped[int] = mapped_column(Integer, default=0, info=NOT_PERSONAL)


class DataExport(Base):
    """A data-export request (R06). The archive is sealed under the user's data key while stored."""

    __tablename__ = "data_exports"
    __subject__ = SubjectLink("user_id", label="数据导出记录")
    __table_args__ = (Index("ix_data_exports_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info=pii("user.id", "用户标识", purposes=["account"])
    )
    requested_by: Mapped[str] = mapped_column(String(16), default="self", info=NOT_PERSONAL)
    #: A guardian downloads a child's export with a one-off token; only its hash is kept.
    guardian_token_hash: Mapped[str | None] = mapped_column(String(64), info=SECRET)
    status: Mapped[str] = mapped_column(String(16), default="pending", info=NOT_PERSONAL)
    progress: Mapped[int] = mapped_column(Integer, default=0, info=NOT_PERSONAL)
    storage_key: Mapped[str | None] = mapped_column(
        String(128),
        info=pii(
            "user.export.file",
            "导出的数据副本",
            purposes=["account"],
            retention="P1D",
            exported=False,
            file=True,
        ),
    )
    size: Mapped[int | None] = mapped_column(Integer, info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    error: Mapped[str | None] = mapped_column(String(64), info=NOT_PERSONAL)


class AccountCancellation(Base):
    """A cancellation request (P36, R05): cooling-off, then erasure; withdrawable until erasure starts.
    Kept after erasure as proof that the request was carried out (it holds only ids and times)."""

    __tablename__ = "account_cancellations"
    __subject__ = SubjectLink("user_id", label="注销申请")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        info=pii("user.id", "用户标识", purposes=["account"], erasure="keep"),
    )
    status: Mapped[str] = mapped_column(String(16), info=NOT_PERSONAL)  # cooling_off|withdrawn|erasing|erased
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    erase_after: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    steps_done: Mapped[list[str]] = mapped_column(JSON, default=list, info=NOT_PERSONAL)


class PrivacyCase(Base):
    """A request handled by people (P34, P35, P37, R05, R14): deletion on the policy's grounds,
    correction, complaint or contact. The user's own words are encrypted under their data key."""

    __tablename__ = "privacy_cases"
    __subject__ = SubjectLink("user_id", label="个人信息申请与投诉")
    __table_args__ = (Index("ix_privacy_cases_status_deadline", "status", "deadline"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        info=pii("user.id", "用户标识", purposes=["account"], erasure="keep"),
    )
    kind: Mapped[str] = mapped_column(String(24), info=NOT_PERSONAL)
    ground: Mapped[str | None] = mapped_column(String(32), info=NOT_PERSONAL)
    channel: Mapped[str] = mapped_column(String(16), default="app", info=NOT_PERSONAL)
    description_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=pii("user.case.description", "申请与投诉内容", purposes=["account"], encrypted=True)
    )
    status: Mapped[str] = mapped_column(String(24), info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    deadline: Mapped[date | None] = mapped_column(Date, info=NOT_PERSONAL)
    resolution_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=pii("user.case.resolution", "处理结果", purposes=["account"], encrypted=True)
    )
    refusal_reason: Mapped[str | None] = mapped_column(Text, info=NOT_PERSONAL)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class CaseEvent(Base):
    """A case's status history. Notes are staff's words about the handling, never the user's data."""

    __tablename__ = "privacy_case_events"
    __subject__ = SubjectLink(None)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    case_id: Mapped[str] = mapped_column(
        ForeignKey("privacy_cases.id", ondelete="CASCADE"), index=True, info=NOT_PERSONAL
    )
    status: Mapped[str] = mapped_column(String(24), info=NOT_PERSONAL)
    actor: Mapped[str] = mapped_column(String(40), info=NOT_PERSONAL)
    note: Mapped[str | None] = mapped_column(String(500), info=NOT_PERSONAL)
    at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class GuardianConsent(Base):
    """A guardian's verified consent for a user under 18 (P42, R09)."""

    __tablename__ = "guardian_consents"
    __subject__ = SubjectLink(
        label="监护人同意",
        subjects=(
            Subject(column="user_id"),
            # The guardian, by their phone: when they are (or become) a user, their export shows that
            # they consented for a child; their own erasure leaves the child's record of that consent.
            Subject(
                phone_bidx="guardian_phone_bidx",
                role="guardian",
                fate="keep",
                reason="未成年用户账号的监护人同意凭证，随该未成年用户的账号保存",
                columns=("guardian_phone_enc",),
            ),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        info=pii("user.id", "用户标识", purposes=["account"]),
    )
    guardian_phone_bidx: Mapped[str] = mapped_column(
        String(64),
        index=True,
        info=pii(
            "guardian.contact.phone", "监护人手机号码（检索索引）", purposes=["account"], exported=False
        ),
    )
    guardian_phone_enc: Mapped[bytes] = mapped_column(
        LargeBinary,
        info=pii("guardian.contact.phone", "监护人手机号码", purposes=["account"], encrypted=True),
    )
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
