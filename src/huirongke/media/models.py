"""Uploaded media. Files live in the media store under `storage_key`; rows point at their owner."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SubjectLink, pii


class Media(Base):
    __tablename__ = "media"
    __subject__ = SubjectLink("owner_id", label="上传的媒体文件")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    owner_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        info=pii("user.id", "用户标识", purposes=["profile"]),
    )
    kind: Mapped[str] = mapped_column(String(8), info=NOT_PERSONAL)
    mime: Mapped[str] = mapped_column(String(64), info=NOT_PERSONAL)
    storage_key: Mapped[str] = mapped_column(
        String(128), unique=True, info=pii("user.media.file", "上传的图片", purposes=["profile"], file=True)
    )
    size: Mapped[int] = mapped_column(Integer, info=NOT_PERSONAL)
    width: Mapped[int | None] = mapped_column(Integer, info=NOT_PERSONAL)
    height: Mapped[int | None] = mapped_column(Integer, info=NOT_PERSONAL)
    status: Mapped[str] = mapped_column(String(16), default="ready", info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
