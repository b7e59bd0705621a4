"""The two lists (R01): 已收集个人信息清单 and 第三方信息共享清单, generated from the data map and
the third-party declarations, never written by hand."""

from __future__ import annotations

from typing import Any

from huirongke.config import Settings
from huirongke.privacy import registry
from huirongke.privacy.providers import active_third_parties
from huirongke.privacy.purposes import PURPOSES

_RETENTION_LABEL = {"account": "账号存续期间", "audit": "安全审计日志保存期限（不少于 6 个月）"}


def retention_label(value: str) -> str:
    if value in _RETENTION_LABEL:
        return _RETENTION_LABEL[value]
    delta = registry.retention_delta(value)
    return f"{delta.days} 天" if delta else value


def collection_list() -> list[dict[str, Any]]:
    """One entry per data category: type, purposes, scenario, retention, sensitivity, protection."""
    seen: dict[str, dict[str, Any]] = {}
    for t in registry.tables():
        for c in t.columns:
            cls = c.cls
            if not cls.personal or cls.category in ("user.id",) or not cls.label or "索引" in cls.label:
                continue
            entry = seen.setdefault(
                cls.category,
                {
                    "category": cls.category,
                    "type": cls.label,
                    "sensitive": cls.sensitive,
                    "purposes": [],
                    "scenarios": [],
                    "retention": retention_label(cls.retention),
                    "encrypted": cls.encrypted,
                },
            )
            entry["sensitive"] = entry["sensitive"] or cls.sensitive
            entry["encrypted"] = entry["encrypted"] or cls.encrypted
            for key in cls.purposes:
                p = PURPOSES[key]
                if p.label not in entry["purposes"]:
                    entry["purposes"].append(p.label)
                    entry["scenarios"].append(p.description)
    return sorted(seen.values(), key=lambda e: e["category"])


def _category_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for t in registry.tables():
        for c in t.columns:
            if c.cls.personal and c.cls.label and "索引" not in c.cls.label:
                labels.setdefault(c.cls.category, c.cls.label)
    return labels


def sharing_list(settings: Settings) -> list[dict[str, Any]]:
    labels = _category_labels()
    return [
        {
            "name": p.name,
            "company": p.company,
            "region": "中国境内" if p.region == "CN-mainland" else p.region,
            "purpose": PURPOSES[p.purpose].label,
            "data": [labels.get(cat, cat) for cat in p.data],
            "scenario": p.scenario,
            "manner": p.manner,
            "basis": p.basis,
        }
        for p in active_third_parties(settings)
    ]
