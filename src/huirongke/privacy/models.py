"""Privacy-engine tables: subject data keys, policy versions and agreements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SubjectLink, pii


class DataKey(Base):
    """A subject's wrapped data key. Deleting it is crypto-shredding (R13)."""

    __tablename__ = "data_keys"
    __subject__ = SubjectLink("subject_id")

    subject_id: Mapped[str] = mapped_column(
        String(32), primary_key=True, info=pii("user.id", "用户标识", purposes=["account"])
    )
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    __subject__ = SubjectLink(None)

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, info=NOT_PERSONAL)
    text: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    changes: Mapped[str] = mapped_column(Text, default="", info=NOT_PERSONAL)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class PolicyAgreement(Base):
    """Append-only history of which policy version a user agreed to, when, and through which channel."""

    __tablename__ = "policy_agreements"
    __subject__ = SubjectLink("user_id")
    __table_args__ = (Index("ix_policy_agreements_user_version", "user_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info=pii("user.id", "用户标识", purposes=["account"])
    )
    version: Mapped[int] = mapped_column(ForeignKey("policy_versions.version"), info=NOT_PERSONAL)
    channel: Mapped[str] = mapped_column(String(16), default="app", info=NOT_PERSONAL)
    agreed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, info=pii("user.consent.policy", "同意隐私政策的记录", purposes=["account"], erasure="keep")
    )
