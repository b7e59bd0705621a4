"""Accounts: users, SMS codes, devices, sessions and real-name submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SECRET, SubjectLink, pii


class User(Base):
    __tablename__ = "users"
    __subject__ = SubjectLink("id", label="账号与个人资料")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    phone_bidx: Mapped[str | None] = mapped_column(
        String(64),
        unique=True,
        info=pii("user.contact.phone", "手机号码（检索索引）", purposes=["account"], exported=False),
    )
    phone_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii("user.contact.phone", "手机号码", purposes=["account", "security"], encrypted=True),
    )
    status: Mapped[str] = mapped_column(String(16), default="active", info=NOT_PERSONAL)
    # The profile fields are sealed under the user's data key like the phone (accounts/sealed_profile.py):
    # a copy of the database or of a backup shows none of them, and crypto-shredding erases them all.
    nickname_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii("user.profile.nickname", "昵称", purposes=["profile"], erasure="anonymize", encrypted=True),
    )
    avatar_media_id: Mapped[str | None] = mapped_column(
        String(32), info=pii("user.profile.avatar", "头像", purposes=["profile"])
    )
    gender_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=pii("user.profile.gender", "性别", purposes=["profile"], encrypted=True)
    )
    birthday_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=pii("user.profile.birthday", "生日", purposes=["profile"], encrypted=True)
    )
    #: P42: `declared` (typed by the user) or `id_number` (from a real-name submission: no profile edit
    #: changes it). See accounts/age.py.
    birthday_source: Mapped[str | None] = mapped_column(
        String(16), info=pii("user.minor.age", "生日来源（本人填写或身份证号码）", purposes=["account"])
    )
    #: The age gate at sign-up (P42, R09): `adult` (18 or older) or `birth_month` (then sealed below).
    age_declaration: Mapped[str | None] = mapped_column(
        String(16), info=pii("user.minor.age", "注册时的年龄声明", purposes=["account"])
    )
    birth_month_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii("user.minor.age", "出生年月（注册时填写）", purposes=["account"], encrypted=True),
    )
    tags_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        # the plaintext is a JSON list; `sealed_as` says so to readers that open sealed columns generically
        info={
            **pii("user.profile.tags", "个人标签", purposes=["profile"], encrypted=True),
            "sealed_as": "json",
        },
    )
    region_enc: Mapped[bytes | None] = mapped_column(
        LargeBinary, info=pii("user.profile.region", "所在地区", purposes=["profile"], encrypted=True)
    )
    password_hash: Mapped[str | None] = mapped_column(
        String(255),
        info=pii("user.credentials.password", "登录密码（哈希）", purposes=["account"], exported=False),
    )
    show_phone: Mapped[bool] = mapped_column(Boolean, default=False, info=NOT_PERSONAL)
    show_region: Mapped[bool] = mapped_column(Boolean, default=False, info=NOT_PERSONAL)
    # Personalised recommendations have no column: the switch is the `personalization` consent (P05).
    #: P42: set once a guardian's consent is verified; users under 18 are restricted until then.
    guardian_consent_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, info=pii("user.minor.guardian_consent", "监护人同意时间", purposes=["account"])
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, info=pii("user.account.created_at", "注册时间", purposes=["account"], erasure="keep")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


def pre_account_phone_index() -> dict[str, Any]:
    """The classification of a phone's blind index on rows made before (or without) an account: SMS
    codes and the texts sent with them, kept one day. A new dict per column, as column info must be."""
    return pii(
        "user.contact.phone", "手机号码（检索索引）", purposes=["account"], retention="P1D", exported=False
    )


class SmsCode(Base):
    """A sign-in code. Only a keyed hash of the code is kept; the phone only as its blind index."""

    __tablename__ = "sms_codes"
    __subject__ = SubjectLink("phone_bidx", via="phone_bidx", label="短信验证码记录")
    __table_args__ = (Index("ix_sms_codes_phone_created", "phone_bidx", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    phone_bidx: Mapped[str] = mapped_column(String(64), info=pre_account_phone_index())
    purpose: Mapped[str] = mapped_column(String(32), default="login", info=NOT_PERSONAL)
    code_hash: Mapped[str] = mapped_column(String(64), info=SECRET)
    ip_hash: Mapped[str | None] = mapped_column(
        String(64),
        info=pii(
            "device.network.ip", "请求 IP（哈希）", purposes=["security"], retention="P1D", exported=False
        ),
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class Device(Base):
    """A device the user signed in from (P03, P09). The device identifier is stored pseudonymised (P02)."""

    __tablename__ = "devices"
    __subject__ = SubjectLink("user_id", label="登录设备")
    __table_args__ = (Index("ix_devices_user_hash", "user_id", "device_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), info=pii("user.id", "用户标识", purposes=["security"])
    )
    device_hash: Mapped[str] = mapped_column(
        String(64),
        info=pii("device.id", "设备标识（假名化）", purposes=["basic_operation", "security"], exported=False),
    )
    model: Mapped[str | None] = mapped_column(
        String(64), info=pii("device.model", "设备型号", purposes=["basic_operation", "security"])
    )
    os_version: Mapped[str | None] = mapped_column(
        String(64), info=pii("device.os_version", "操作系统版本", purposes=["basic_operation", "security"])
    )
    network_type: Mapped[str | None] = mapped_column(
        String(16), info=pii("device.network.type", "网络类型", purposes=["basic_operation", "security"])
    )
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class AuthSession(Base):
    """A signed-in session. The bearer token itself is never stored, only its SHA-256."""

    __tablename__ = "auth_sessions"
    __subject__ = SubjectLink("user_id", label="登录会话")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        index=True,
        info=pii("user.id", "用户标识", purposes=["account"]),
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=SECRET)
    device_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), info=NOT_PERSONAL
    )
    login_ip: Mapped[str | None] = mapped_column(
        String(45), info=pii("device.network.ip", "登录 IP 地址", purposes=["security"], retention="P180D")
    )
    method: Mapped[str] = mapped_column(String(16), default="sms", info=NOT_PERSONAL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    #: The last step-up verification on this session (`accounts/stepup.py`); a session created by an
    #: SMS code counts as verified at `created_at` without it.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)


class RealNameVerification(Base):
    """Real-name submission (P32). The name and ID number are encrypted; lookups use a blind index."""

    __tablename__ = "real_name_verifications"
    __subject__ = SubjectLink("user_id", label="实名认证")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"),
        unique=True,
        info=pii("user.id", "用户标识", purposes=["real_name"]),
    )
    name_enc: Mapped[bytes] = mapped_column(
        LargeBinary,
        info=pii("user.identity.name", "真实姓名", purposes=["real_name"], sensitive=True, encrypted=True),
    )
    id_number_enc: Mapped[bytes] = mapped_column(
        LargeBinary,
        info=pii(
            "user.identity.id_number", "身份证号码", purposes=["real_name"], sensitive=True, encrypted=True
        ),
    )
    id_number_bidx: Mapped[str] = mapped_column(
        String(64),
        index=True,
        info=pii(
            "user.identity.id_number",
            "身份证号码（检索索引）",
            purposes=["real_name"],
            sensitive=True,
            exported=False,
        ),
    )
    status: Mapped[str] = mapped_column(String(16), default="pending", info=NOT_PERSONAL)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    reviewer_note: Mapped[str | None] = mapped_column(String(200), info=NOT_PERSONAL)
