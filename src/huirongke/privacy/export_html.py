"""The export's index.html: the same data as data.json, as a Chinese document a person reads on a
phone. Fields carry their data-map labels, times are Beijing time (2026年12月2日 15:04), and what only
the system needs (row ids, links to other rows, the subject's own id, secrets) is left to data.json.

One card (a definition list) per row, so nothing is wider than the screen at 320 px.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from huirongke.privacy import cases, consent, purposes, registry
from huirongke.privacy.datamap import RECORD_LABELS

BEIJING = ZoneInfo("Asia/Shanghai")
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)

#: Chinese words for the coded values of record columns: by "table.column", then by column name.
VALUE_LABELS: dict[str, dict[Any, str]] = {
    "gender": {"male": "男", "female": "女", "other": "其他"},
    "birthday_source": {"declared": "本人填写", "self": "本人填写", "id_number": "身份证号码"},
    "age_declaration": {"adult": "已确认年满 18 周岁", "birth_month": "填写了出生年月"},
    "method": {"sms": "短信验证码", "password": "密码"},
    "channel": {
        "app": "应用内",
        "sign_in": "登录时",
        "settings": "设置页",
        "demo": "演示数据",
        "web": "网页",
        "staff": "客服",
    },
    "requested_by": {"self": "本人", "guardian": "监护人"},
    "users.status": {
        "active": "正常",
        "cooling_off": "注销冷静期中",
        "erasing": "正在注销",
        "erased": "已注销",
    },
    "data_exports.status": {
        "pending": "排队中",
        "running": "生成中",
        "ready": "已生成",
        "failed": "失败",
        "expired": "已过期",
    },
    "media.status": {"ready": "正常", "pending": "处理中"},
    "media.kind": {"image": "图片"},
    "real_name_verifications.status": {"pending": "待审核", "verified": "已认证", "rejected": "未通过"},
    "privacy_cases.status": cases.STATUS_LABELS,
    "privacy_cases.kind": cases.KINDS,
    "privacy_cases.ground": cases.DELETION_GROUNDS,
    "consent_events.purpose": {k: p.label for k, p in purposes.PURPOSES.items()},
    "consent_events.granted": {True: "同意", False: "撤回"},
    "sms_codes.purpose": {
        "login": "登录",
        "account": "登录",
        "case": "个人信息申请",
        "guardian": "监护人验证",
        "step_up": "身份验证",
        "password": "设置密码",
    },
    "permission": consent.PERMISSIONS,
    "permission_events.event": {"granted": "允许", "denied": "拒绝", "revoked": "撤回"},
}
_BOOL = {True: "是", False: "否"}
MEDIA_ID = "_media_id"  # a column naming a row of `media` (an avatar): shown as that picture
_TIME_NAMES = ("_at", "_on", "day", "month", "deadline")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Field:
    label: str
    text: str = ""
    image: str = ""  # a path inside the zip: the field shows the picture
    sensitive: bool = False


def local_time(value: datetime) -> str:
    t = (
        value.astimezone(BEIJING)
        if value.tzinfo
        else value.replace(tzinfo=ZoneInfo("UTC")).astimezone(BEIJING)
    )
    return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}"


def local_date(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def _as_time(value: Any, kind: type | None) -> Any:
    """ISO strings of data.json back to dates and times: by the column's type, and by their form for
    encrypted columns (sealed as text) and months (`2008-05`)."""
    if not isinstance(value, str):
        return value
    with suppress(ValueError):
        if kind is datetime or _ISO_TIME.match(value):
            return datetime.fromisoformat(value)
        if kind is date or _ISO_DATE.match(value):
            return date.fromisoformat(value)
    month = _ISO_MONTH.match(value)
    return f"{int(month.group(1))}年{int(month.group(2))}月" if month else value


def _python_type(c: registry.MappedColumn) -> type | None:
    kind = getattr(c.column.type, "impl_instance", c.column.type)  # a TypeDecorator's own type
    with suppress(NotImplementedError):
        return kind.python_type
    return None


def _label(t: registry.MappedTable, c: registry.MappedColumn) -> str:
    """The field's name: the export's own for this column, else its data-map label (personal data),
    else the shared name of a record column; "" keeps it out of the document."""
    if f"{t.name}.{c.name}" in RECORD_LABELS:
        return RECORD_LABELS[f"{t.name}.{c.name}"]
    if c.cls.personal:
        return c.cls.label
    return RECORD_LABELS.get(c.name, "")


def _hidden(t: registry.MappedTable, c: registry.MappedColumn) -> bool:
    """Row ids, links to other rows and to the subject, and secrets stay in data.json only."""
    return (
        not c.cls.exported
        or c.column.primary_key
        or bool(c.column.foreign_keys)
        or any(c.name == s.link_column for s in t.subjects)
        or c.name == "id"
        or (c.name.endswith("_id") and not c.name.endswith(MEDIA_ID))
    )


def _text(t: registry.MappedTable, name: str, value: Any, c: registry.MappedColumn) -> str:
    words = VALUE_LABELS.get(f"{t.name}.{name}") or VALUE_LABELS.get(name)
    if words is not None and not isinstance(value, list | dict):
        try:
            if value in words:
                return words[value]
        except TypeError:
            pass
    if isinstance(value, bool):
        return _BOOL[value]
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, date):
        return local_date(value)
    if isinstance(value, list):
        return "、".join(_text(t, name, v, c) for v in value)
    if isinstance(value, dict):
        return "；".join(f"{k}：{_text(t, name, v, c)}" for k, v in value.items())
    if name == "size" and isinstance(value, int):
        return _size(value)
    if isinstance(value, str) and value.startswith("+86") and c.cls.category.endswith("phone"):
        return value.removeprefix("+86")
    return str(value)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} 字节"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def _field(
    t: registry.MappedTable, c: registry.MappedColumn, name: str, value: Any, files: dict[str, str]
) -> Field | None:
    label = _label(t, c)
    if not label or value is None or value == "" or value == []:
        return None
    if c.cls.file or name.endswith(MEDIA_ID):
        key = files.get(value) if name.endswith(MEDIA_ID) else (value if value in files.values() else None)
        if key is None:
            return Field(label, text="（文件已不存在）")
        return Field(label, image=f"media/{key}")
    if isinstance(value, str) and c.column.info.get("sealed_as") == "json":
        with suppress(ValueError):
            value = json.loads(value)
    kind = None if c.cls.encrypted else _python_type(c)
    if kind in (datetime, date) or name.endswith(_TIME_NAMES):  # typed, or sealed as text
        value = _as_time(value, kind)
    return Field(label, text=_text(t, name, value, c), sensitive=c.cls.sensitive)


def _column(t: registry.MappedTable, name: str) -> registry.MappedColumn | None:
    for c in t.columns:
        if c.name in (name, f"{name}_enc"):
            return c
    return None


def sections(data: dict[str, Any], media: list[str]) -> list[dict[str, Any]]:
    """For each category of data.json: its label and one list of fields per row."""
    files = {key: key for key in media}  # storage key -> itself; media row id -> its storage key
    for cat in data["categories"]:
        if cat["table"] == "media":
            files |= {row["id"]: row["storage_key"] for row in cat["rows"] if row.get("storage_key") in media}
    out = []
    for cat in data["categories"]:
        t = registry.by_name(cat["table"])
        cards = []
        for row in cat["rows"]:
            fields = []
            for name, value in row.items():
                c = _column(t, name)
                if c is None or _hidden(t, c):
                    continue
                f = _field(t, c, name, value, files)
                if f is not None:
                    fields.append(f)
            if fields:
                cards.append(fields)
        out.append({"label": cat["label"] or "其他记录", "cards": cards, "count": len(cat["rows"])})
    return out


def render(data: dict[str, Any], media: list[str]) -> str:
    exported_at = datetime.fromisoformat(data["exported_at"])
    return _TEMPLATES.get_template("export_index.html").render(
        exported_at=local_time(exported_at), sections=sections(data, media), media=media
    )
