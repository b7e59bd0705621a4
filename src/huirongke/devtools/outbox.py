"""The dev outbox: texts the console provider "sent", readable through the dev-only endpoint.

The phone is kept only as its blind index, so the outbox never holds a plaintext number.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huirongke.accounts.models import pre_account_phone_index
from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SubjectLink, pii


class DevSmsOutbox(Base):
    __tablename__ = "dev_sms_outbox"
    __subject__ = SubjectLink("phone_bidx", via="phone_bidx", label="开发短信发件箱")
    __table_args__ = (Index("ix_dev_sms_outbox_phone_sent", "phone_bidx", "sent_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    phone_bidx: Mapped[str] = mapped_column(String(64), info=pre_account_phone_index())
    text: Mapped[str] = mapped_column(
        Text, info=pii("user.sms.text", "短信内容", purposes=["account"], retention="P1D")
    )
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
