"""The two lists (R01): what is served must be what the data map, the declared stores and the
configured providers say, computed here on their own, and must follow any change to them.

A hand-written or frozen copy of a list passes a comparison with today's data map; it fails
`test_a_changed_classification_changes_the_served_list`, which changes the data map under the
running service.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import huirongke.kit
from conftest import auth, sign_up
from huirongke.config import Settings
from huirongke.kit.clock import utcnow
from huirongke.kit.sms.aliyun import ALIYUN_SMS, AliyunSmsProvider
from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts
from huirongke.privacy import registry, stores
from huirongke.privacy.datamap import DATAMAP_KEY
from huirongke.privacy.models import ConsentEvent
from huirongke.privacy.providers import DataLocationError, check_data_location, configured_providers
from huirongke.privacy.purposes import PURPOSES

# The list's own vocabulary, written out here rather than imported: a change to it must show here.
_UNIT_DAYS = {"D": 1, "M": 30, "Y": 365}


def _period_words(retention: str, settings: Settings) -> str:
    if retention == "account":
        return "账号存续期间"
    if retention == "audit":
        return f"{settings.audit_retention_days} 天"
    assert retention.startswith("P") and retention[-1] in _UNIT_DAYS, retention
    return f"{int(retention[1:-1]) * _UNIT_DAYS[retention[-1]]} 天"


def _published(category: str, label: str) -> bool:
    """Ids and keyed lookup indexes are how rows are found, not information of their own."""
    return bool(label) and category != "user.id" and "索引" not in label


def expected_collection_list(settings: Settings) -> list[dict[str, Any]]:
    """The collection list, computed from the data map's columns and the declared stores."""
    sources: list[tuple[str, str, tuple[str, ...], str, bool, bool]] = []
    for t in registry.tables():
        for c in t.columns:
            cls = c.column.info[DATAMAP_KEY]  # the declaration itself, as the column carries it
            if cls.personal and _published(cls.category, cls.label):
                sources.append(
                    (cls.category, cls.label, cls.purposes, cls.retention, cls.sensitive, cls.encrypted)
                )
    for s in stores.declared(settings):
        if _published(s.category, s.label):
            sources.append((s.category, s.label, s.purposes, s.retention, s.sensitive, s.encrypted))

    out = []
    for category in sorted({s[0] for s in sources}):
        mine = [s for s in sources if s[0] == category]
        labels: list[str] = []
        purposes: list[str] = []
        periods: list[tuple[str, str]] = []
        for _, label, keys, retention, _s, _e in mine:
            if label not in labels:
                labels.append(label)
            purposes += [k for k in keys if k not in purposes]
            pair = (label, _period_words(retention, settings))
            if pair not in periods:
                periods.append(pair)
        distinct = {p for _, p in periods}
        out.append(
            {
                "category": category,
                "type": "、".join(labels),
                "sensitive": any(s[4] for s in mine),
                "purposes": [PURPOSES[k].label for k in purposes],
                "scenarios": [PURPOSES[k].description for k in purposes],
                "retention": distinct.pop()
                if len(distinct) == 1
                else "；".join(f"{label}：{p}" for label, p in periods),
                "encrypted": all(s[5] for s in mine),
            }
        )
    return out


def expected_sharing_list(ctx: Any) -> list[dict[str, Any]]:
    """The sharing list, computed from the declarations of the providers the context holds."""
    names = {}
    for item in expected_collection_list(ctx.settings):
        for label in item["type"].split("、")[:1]:
            names[item["category"]] = label
    out = []
    for provider in (ctx.sms, ctx.storage):
        facts = type(provider).third_party
        if facts is None:
            continue
        out.append(
            {
                "key": facts.key,
                "name": facts.name,
                "company": facts.company,
                "region": "中国境内" if facts.region == MAINLAND else facts.region,
                "purpose": PURPOSES[facts.purpose].label,
                "data": [names[c] for c in facts.data],
                "scenario": facts.scenario,
                "manner": facts.manner,
                "basis": facts.basis,
            }
        )
    return out


def _clear_registry_caches() -> None:
    for value in vars(registry).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@contextmanager
def reclassified(table: str, column: str, **changes: Any) -> Iterator[None]:
    """Change one column's data-map declaration for the duration of the block."""
    col = registry.by_name(table).table.c[column]
    before = col.info[DATAMAP_KEY]
    col.info[DATAMAP_KEY] = dataclasses.replace(before, **changes)
    _clear_registry_caches()
    try:
        yield
    finally:
        col.info[DATAMAP_KEY] = before
        _clear_registry_caches()


def served(client: Any, which: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/privacy/{which}")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


# The collection list ------------------------------------------------------------------------------


def test_the_served_collection_list_is_the_data_map(client, settings):
    r = client.get("/api/v1/privacy/collection-list")  # no account needed
    assert r.status_code == 200
    assert r.json() == {"title": "已收集个人信息清单", "items": expected_collection_list(settings)}


def test_a_changed_classification_changes_the_served_list(client, settings):
    before = {i["category"]: i for i in served(client, "collection-list")}
    assert before["user.profile.nickname"]["retention"] == "账号存续期间"
    with reclassified("users", "nickname_enc", label="网名", retention="P30D", sensitive=True):
        during = served(client, "collection-list")
        assert during == expected_collection_list(settings)
        nickname = next(i for i in during if i["category"] == "user.profile.nickname")
        assert (nickname["type"], nickname["retention"], nickname["sensitive"]) == ("网名", "30 天", True)
    with reclassified("users", "gender_enc", category="user.profile.sex"):
        cats = [i["category"] for i in served(client, "collection-list")]
        assert "user.profile.sex" in cats and "user.profile.gender" not in cats
    with reclassified("users", "region_enc", personal=False):
        cats = [i["category"] for i in served(client, "collection-list")]
        assert "user.profile.region" not in cats
    assert served(client, "collection-list") == list(before.values())


def test_one_category_kept_for_two_periods_names_both(client, settings):
    ip = next(i for i in served(client, "collection-list") if i["category"] == "device.network.ip")
    assert ip["retention"] == "登录 IP 地址：180 天；请求 IP（哈希）：1 天"
    assert ip["type"] == "登录 IP 地址、请求 IP（哈希）"


def test_the_log_files_are_listed_at_their_configured_period(client, settings):
    logs = next(s for s in stores.declared(settings) if s.key == "log_files")
    item = next(i for i in served(client, "collection-list") if i["category"] == logs.category)
    assert item["type"] == "服务日志"
    assert item["retention"] == f"{settings.log_retention_days} 天"
    settings.log_retention_days += 30  # the running service reads the setting it was given
    item = next(i for i in served(client, "collection-list") if i["category"] == logs.category)
    assert item["retention"] == f"{settings.log_retention_days} 天"


def test_the_audit_log_is_listed_at_its_configured_period(client, settings):
    settings.audit_retention_days = 500
    item = next(i for i in served(client, "collection-list") if i["category"] == "audit.subject")
    assert item["retention"] == "500 天"


# The sharing list ---------------------------------------------------------------------------------


def _provider_classes() -> list[type]:
    """Every provider class built in `kit/`: each declares `third_party`."""
    found = []
    for mod in pkgutil.walk_packages(huirongke.kit.__path__, "huirongke.kit."):
        module = importlib.import_module(mod.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                obj.__module__ == module.__name__
                and "third_party" in vars(obj)
                and "Protocol" not in str(obj.__mro__)
            ):
                found.append(obj)
    return found


def test_every_provider_declares_its_third_party_facts():
    by_name = {c.__name__: c.third_party for c in _provider_classes()}
    assert by_name == {"AliyunSmsProvider": ALIYUN_SMS, "ConsoleSmsProvider": None, "LocalStorage": None}
    declared = {c.cls.category for t in registry.tables() for c in t.columns if c.cls.personal}
    for cls in _provider_classes():
        facts = cls.third_party
        assert cls.region == (facts.region if facts else MAINLAND), cls.__name__
        if facts is not None:
            assert facts.purpose in PURPOSES
            assert set(facts.data) <= declared, facts.key


def test_the_default_providers_share_nothing(client, ctx):
    assert set(configured_providers(ctx)) == {"sms", "storage"}
    assert served(client, "sharing-list") == expected_sharing_list(ctx) == []


class TestWithS3Url:
    @pytest.fixture
    def settings(self, settings):
        settings.storage_url = "s3://hrk-media"  # no S3 code exists: nothing may claim it
        return settings

    def test_no_analytics_sdk_and_no_object_storage_is_listed(self, client, ctx):
        assert type(ctx.storage).third_party is None
        assert not any("umeng" in key or "analytics" in key for key in PURPOSES)
        both = [served(client, "sharing-list"), served(client, "collection-list")]
        text = json.dumps(both, ensure_ascii=False)
        assert "友盟" not in text and "对象存储" not in text
        assert both[0] == []


class TestWithAliyun:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_provider = "aliyun"
        return settings

    def test_the_configured_sms_provider_is_listed_from_its_declaration(self, client, ctx):
        assert isinstance(ctx.sms, AliyunSmsProvider)
        items = served(client, "sharing-list")
        assert items == expected_sharing_list(ctx)
        assert [(i["name"], i["region"], i["data"]) for i in items] == [
            ("阿里云短信服务", "中国境内", ["手机号码", "监护人手机号码"])
        ]

    def test_a_changed_declaration_changes_the_served_list(self, client, ctx, monkeypatch):
        company = "阿里云计算（杭州）有限公司"
        changed = dataclasses.replace(ALIYUN_SMS, company=company, data=("user.contact.phone",))
        monkeypatch.setattr(AliyunSmsProvider, "third_party", changed)
        items = served(client, "sharing-list")
        assert items == expected_sharing_list(ctx)
        assert (items[0]["company"], items[0]["data"]) == ("阿里云计算（杭州）有限公司", ["手机号码"])

    def test_lists_cli_prints_the_configured_lists(self, client, ctx, settings, monkeypatch):
        from privacy_support import run_cli

        monkeypatch.setenv("HRK_SMS_PROVIDER", "aliyun")
        r = run_cli(monkeypatch, settings, "privacy", "lists")
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert out == {"collection": served(client, "collection-list"), "sharing": expected_sharing_list(ctx)}


# A purpose that is gone ---------------------------------------------------------------------------


def test_ledger_rows_of_a_removed_purpose_are_ignored(client, ctx):
    token, user = sign_up(client)
    with ctx.db.session() as s:
        s.add(
            ConsentEvent(
                user_id=user["id"],
                purpose="analytics_umeng",
                granted=True,
                policy_version=1,
                channel="app",
                at=utcnow(),
            )
        )
    r = client.get("/api/v1/privacy/consents", headers=auth(token))
    assert r.status_code == 200, r.text
    assert [c["purpose"] for c in r.json()] == [p.key for p in PURPOSES.values() if p.needs_consent]


# Data location (P14) ------------------------------------------------------------------------------


class _AbroadStorage:
    """A storage provider as a plugin would declare it, processing data outside the mainland."""

    third_party: ThirdPartyFacts | None = dataclasses.replace(
        ALIYUN_SMS, key="abroad_storage", name="境外存储", region="US", data=("user.media.file",)
    )
    region = "US"


def test_processing_abroad_is_refused(ctx):
    s = Settings()
    with pytest.raises(DataLocationError):
        check_data_location(s, {"storage": _AbroadStorage(), "sms": ctx.sms})
    with pytest.raises(DataLocationError):
        check_data_location(s, {"storage": "US"})
    check_data_location(s, configured_providers(ctx))


def test_a_separate_consent_purpose_allows_it():
    assert PURPOSES["location"].basis == "separate_consent"
    check_data_location(Settings(cross_border_purpose="location"), {"storage": _AbroadStorage()})


@pytest.mark.parametrize("purpose", ["personalization", "account", "security", "analytics_umeng", "nope", ""])
def test_a_purpose_without_separate_consent_does_not(purpose):
    with pytest.raises(DataLocationError):
        check_data_location(Settings(cross_border_purpose=purpose), {"storage": _AbroadStorage()})
