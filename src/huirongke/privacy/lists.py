"""The two lists (R01): 已收集个人信息清单 and 第三方信息共享清单, generated from the data map, the
declared non-table stores (`privacy/stores.py`) and the providers the running process holds, never
written by hand.

A category appears in the collection list when some column (or store) declares it with a label users
can read; keyed blind indexes (labels marked 检索索引) and bare user ids are how rows are found, not
information of their own, and are left out. Where the columns of one category keep their data for
different periods, the list names each period beside its column's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from huirongke.config import Settings
from huirongke.kit.thirdparty import MAINLAND
from huirongke.privacy import registry, stores
from huirongke.privacy.providers import third_parties
from huirongke.privacy.purposes import PURPOSES

ACCOUNT_LABEL = "账号存续期间"
REGION_LABELS = {MAINLAND: "中国境内"}


def retention_label(value: str, settings: Settings) -> str:
    """How long, in the words of the list: while the account exists, or the period in days as the
    retention job counts it (`audit` is the audit log's configured period)."""
    if value == "account":
        return ACCOUNT_LABEL
    if value == "audit":
        return f"{settings.audit_retention_days} 天"
    delta = registry.retention_delta(value)
    if delta is None:
        raise ValueError(f"unknown retention {value!r}")
    return f"{delta.days} 天"


def is_published(category: str, label: str) -> bool:
    return bool(label) and category != "user.id" and "索引" not in label


@dataclass(frozen=True)
class _Source:
    """One column or store, as the list sees it."""

    category: str
    label: str
    purposes: tuple[str, ...]
    retention: str
    sensitive: bool
    encrypted: bool


def _sources(settings: Settings) -> list[_Source]:
    columns = [c.cls for t in registry.tables() for c in t.columns]
    out = [
        _Source(c.category, c.label, c.purposes, c.retention, c.sensitive, c.encrypted)
        for c in columns
        if c.personal and is_published(c.category, c.label)
    ]
    out += [
        _Source(s.category, s.label, s.purposes, s.retention, s.sensitive, s.encrypted)
        for s in stores.declared(settings)
        if is_published(s.category, s.label)
    ]
    return out


def collection_list(settings: Settings) -> list[dict[str, Any]]:
    """One entry per data category: type, purposes, scenarios, retention, sensitivity, protection."""
    grouped: dict[str, list[_Source]] = {}
    for src in _sources(settings):
        grouped.setdefault(src.category, []).append(src)
    items = []
    for category, sources in sorted(grouped.items()):
        labels = list(dict.fromkeys(s.label for s in sources))
        keys = list(dict.fromkeys(k for s in sources for k in s.purposes))
        periods = list(dict.fromkeys((s.label, retention_label(s.retention, settings)) for s in sources))
        if len({p for _, p in periods}) == 1:
            retention = periods[0][1]
        else:
            retention = "；".join(f"{label}：{period}" for label, period in periods)
        items.append(
            {
                "category": category,
                "type": "、".join(labels),
                "sensitive": any(s.sensitive for s in sources),
                "purposes": [PURPOSES[k].label for k in keys],
                "scenarios": [PURPOSES[k].description for k in keys],
                "retention": retention,
                "encrypted": all(s.encrypted for s in sources),
            }
        )
    return items


def category_labels(settings: Settings) -> dict[str, str]:
    """category → the name users read (its first published label)."""
    labels: dict[str, str] = {}
    for src in _sources(settings):
        labels.setdefault(src.category, src.label)
    return labels


def sharing_list(ctx: Any) -> list[dict[str, Any]]:
    """One entry per third party the running process's providers declare (`providers.third_parties`)."""
    labels = category_labels(ctx.settings)
    return [
        {
            "key": p.key,
            "name": p.name,
            "company": p.company,
            "region": REGION_LABELS.get(p.region, p.region),
            "purpose": PURPOSES[p.purpose].label,
            "data": [labels.get(cat, cat) for cat in p.data],
            "scenario": p.scenario,
            "manner": p.manner,
            "basis": p.basis,
        }
        for p in third_parties(ctx)
    ]
