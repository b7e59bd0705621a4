"""The data map: every column says what it holds, why, for how long, and its fate on erasure.

Declare a personal column with `info=pii(...)` and any other column with `info=NOT_PERSONAL`.
A table says how its rows reach their data subject with `__subject__` (see SubjectLink).
A test walks every mapped table and fails on any column that declares nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Column, Table

Fate = Literal["delete", "anonymize", "keep"]
DATAMAP_KEY = "datamap"


@dataclass(frozen=True)
class Classification:
    category: str  # e.g. "user.contact.phone"
    personal: bool = True
    sensitive: bool = False
    purposes: tuple[str, ...] = ()
    retention: str = "account"  # "account" = while the account exists, or an ISO-8601-like "P30D"
    erasure: Fate = "delete"
    label: str = ""  # the Chinese name shown in the published lists
    encrypted: bool = False
    exported: bool = True  # False for secrets (hashes of credentials), never handed out
    file: bool = False  # holds storage keys of files: export copies them, erasure deletes them


NOT_PERSONAL_CLASS = Classification(category="none", personal=False, erasure="keep")
NOT_PERSONAL: dict[str, Any] = {DATAMAP_KEY: NOT_PERSONAL_CLASS}
#: Not personal data, but a secret (token or code hashes, wrapped keys): never exported.
SECRET: dict[str, Any] = {
    DATAMAP_KEY: Classification(category="secret", personal=False, erasure="keep", exported=False)
}


def pii(
    category: str,
    label: str,
    *,
    purposes: tuple[str, ...] | list[str],
    sensitive: bool = False,
    retention: str = "account",
    erasure: Fate = "delete",
    encrypted: bool = False,
    exported: bool = True,
    file: bool = False,
) -> dict[str, Any]:
    return {
        DATAMAP_KEY: Classification(
            category=category,
            label=label,
            sensitive=sensitive,
            purposes=tuple(purposes),
            retention=retention,
            erasure=erasure,
            encrypted=encrypted,
            exported=exported,
            file=file,
        )
    }


@dataclass(frozen=True)
class Hop:
    """One step of a path: this table's `column` holds the `key` of a row of `table`."""

    column: str
    table: str
    key: str = "id"


@dataclass(frozen=True)
class Subject:
    """One data subject of a table's rows, and how a row reaches them. Exactly one of:

    - `column`: a column holding a user id (after the `via` hops, a column of the last table reached);
    - `phone_bidx`: a column holding a user's phone blind index (rows that exist before an account);
    - `third_party`: a column holding the blind index of someone who is not a user (an imported
      contact); reached only by that person's own request, never by a user's erasure.

    `fate` is what erasing this subject does to the row: `delete` it, `anonymize` it (clear `columns`
    and the link), `keep` it (then `reason` says why), or `columns` (the default for a row's owner:
    every personal column follows its own classified fate). `columns` names the personal columns that
    are this subject's data: what their export shows and what anonymising clears; by default all of
    the row's personal columns for the first subject and none besides the link for the others.
    """

    column: str | None = None
    via: tuple[Hop, ...] = ()
    phone_bidx: str | None = None
    third_party: str | None = None
    role: str = "owner"
    fate: Literal["delete", "anonymize", "keep", "columns"] = "columns"
    reason: str = ""
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.column, self.phone_bidx, self.third_party) if x is not None]
        if len(given) != 1:
            raise TypeError("a Subject names exactly one of column, phone_bidx, third_party")
        if self.via and self.column is None:
            raise TypeError("a path (via) ends at a user-id column")
        if self.fate == "keep" and not self.reason:
            raise TypeError("a subject kept on erasure needs a reason")

    @property
    def link_column(self) -> str:
        """The column of this table that starts the link."""
        if self.via:
            return self.via[0].column
        return str(self.column or self.phone_bidx or self.third_party)

    @property
    def kind(self) -> Literal["user", "phone", "third_party"]:
        if self.column is not None:
            return "user"
        return "phone" if self.phone_bidx is not None else "third_party"


@dataclass(frozen=True)
class SubjectLink:
    """How a table's rows reach their data subjects: `SubjectLink("user_id")` for the common case of
    one user-id column, `SubjectLink(subjects=(Subject(...), ...))` for anything else, `SubjectLink(None)`
    for a table that holds nobody's data."""

    column: str | None = None
    via: str = "user_id"  # shorthand: "user_id" or "phone_bidx" for `column`
    label: str = ""  # the Chinese name of what the table holds, for exports and lists
    subjects: tuple[Subject, ...] = ()

    def __post_init__(self) -> None:
        if self.column is not None and self.subjects:
            raise TypeError("give either a column or subjects, not both")
        if self.column is not None:
            first = (
                Subject(phone_bidx=self.column) if self.via == "phone_bidx" else Subject(column=self.column)
            )
            object.__setattr__(self, "subjects", (first,))

    @property
    def personal(self) -> bool:
        return bool(self.subjects)


def classification(column: Column[Any]) -> Classification | None:
    value = column.info.get(DATAMAP_KEY)
    return value if isinstance(value, Classification) else None


def unclassified_columns(tables: list[Table]) -> list[str]:
    return [f"{t.name}.{c.name}" for t in tables for c in t.columns if classification(c) is None]


#: Chinese names of the record columns (not personal data: what a record is, its state and times)
#: that the readable export shows beside the personal data. Keyed by "table.column", or by a bare
#: column name many tables share. A "table.column" entry also names a personal column in the export
#: where its list label (what the category holds) reads badly as a field name. A column with no
#: label here or in its classification stays in data.json only.
RECORD_LABELS: dict[str, str] = {
    "created_at": "创建时间",
    "updated_at": "最近更新时间",
    "status": "状态",
    "expires_at": "到期时间",
    "verified_at": "验证时间",
    "kind": "类型",
    "channel": "途径",
    "purpose": "用途",
    "permission": "权限",
    "version": "隐私政策版本",
    "policy_version": "隐私政策版本",
    "users.status": "账号状态",
    "users.show_phone": "向他人展示手机号",
    "users.show_region": "向他人展示所在地区",
    "users.created_at": "注册时间",
    "auth_sessions.method": "登录方式",
    "auth_sessions.created_at": "登录时间",
    "auth_sessions.last_seen_at": "最近使用时间",
    "auth_sessions.expires_at": "登录有效期至",
    "auth_sessions.revoked_at": "退出登录时间",
    "auth_sessions.verified_at": "最近验证身份时间",
    "devices.first_seen_at": "首次使用时间",
    "devices.last_seen_at": "最近使用时间",
    "consent_events.granted": "同意或撤回",
    "consent_events.at": "时间",
    "permission_events.event": "操作",
    "permission_events.at": "时间",
    "policy_agreements.agreed_at": "同意时间",
    "policy_agreements.channel": "同意途径",
    "data_exports.requested_by": "申请人",
    "data_exports.progress": "进度（%）",
    "data_exports.size": "文件大小",
    "data_exports.created_at": "申请时间",
    "data_exports.finished_at": "完成时间",
    "data_exports.expires_at": "可下载至",
    "data_keys.created_at": "创建时间",
    "dev_sms_outbox.sent_at": "发送时间",
    "media.mime": "文件格式",
    "media.size": "文件大小",
    "media.width": "宽度（像素）",
    "media.height": "高度（像素）",
    "media.created_at": "上传时间",
    "real_name_verifications.status": "审核状态",
    "real_name_verifications.submitted_at": "提交时间",
    "real_name_verifications.verified_at": "审核时间",
    "real_name_verifications.reviewer_note": "审核意见",
    "sms_codes.attempts": "输错次数",
    "sms_codes.created_at": "发送时间",
    "sms_codes.expires_at": "失效时间",
    "sms_codes.consumed_at": "使用时间",
    "privacy_cases.ground": "理由",
    "privacy_cases.created_at": "提交时间",
    "privacy_cases.verified_at": "验证身份时间",
    "privacy_cases.deadline": "答复期限",
    "privacy_cases.refusal_reason": "不予处理的理由",
    "privacy_cases.closed_at": "办结时间",
}
