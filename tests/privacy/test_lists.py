"""The two lists (R01), generated from the data map and the third-party declarations, and the data
location check (P14)."""

from __future__ import annotations

import pytest

from huirongke.config import Settings
from huirongke.privacy import lists, registry
from huirongke.privacy.providers import MAINLAND, DataLocationError, active_third_parties, check_data_location
from huirongke.privacy.purposes import PURPOSES


def published_categories() -> dict[str, set[str]]:
    """category → labels, for every personal column a user should find in the collection list."""
    out: dict[str, set[str]] = {}
    for t in registry.tables():
        for c in t.columns:
            cls = c.cls
            if cls.personal and cls.label and cls.category != "user.id" and "索引" not in cls.label:
                out.setdefault(cls.category, set()).add(cls.label)
    return out


def test_collection_list_is_public_and_generated_from_the_data_map(client):
    r = client.get("/api/v1/privacy/collection-list")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "已收集个人信息清单"
    items = {i["category"]: i for i in body["items"]}
    expected = published_categories()
    assert set(items) == set(expected)
    for cat, item in items.items():
        assert item["type"] in expected[cat]
        assert item["purposes"] and item["scenarios"] and item["retention"]
        for label in item["purposes"]:
            assert label in {p.label for p in PURPOSES.values()}
    # sensitive data is flagged, and encrypted
    for cat in ("user.identity.name", "user.identity.id_number"):
        assert items[cat]["sensitive"] is True and items[cat]["encrypted"] is True
    assert items["user.profile.nickname"]["sensitive"] is False
    assert items["user.contact.phone"]["type"] == "手机号码"
    assert items["user.contact.phone"]["retention"] == "账号存续期间"
    assert items["device.network.ip"]["retention"] in ("180 天", "1 天")
    assert items["user.identity.id_number"]["purposes"] == ["实名认证"]


def test_lists_follow_the_code_not_a_hand_written_copy():
    assert lists.collection_list() == lists.collection_list()
    cats = {i["category"] for i in lists.collection_list()}
    for t in registry.tables():
        for c in t.columns:
            if c.cls.personal and c.cls.label and c.cls.category != "user.id" and "索引" not in c.cls.label:
                assert c.cls.category in cats


def test_sharing_list_names_the_analytics_sdk(client):
    r = client.get("/api/v1/privacy/sharing-list")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "第三方信息共享清单"
    items = {i["name"]: i for i in body["items"]}
    umeng = next(i for n, i in items.items() if "友盟" in n)
    assert umeng["region"] == "中国境内"
    assert umeng["purpose"] == PURPOSES["analytics_umeng"].label
    assert "设备型号" in umeng["data"]
    assert all(not d.startswith("device.") for d in umeng["data"]), "categories are shown by their labels"
    assert umeng["company"] and umeng["manner"] and umeng["basis"]
    # the console SMS provider sends nothing to anyone: no SMS company is listed
    assert not any("短信" in n for n in items)


def test_every_third_party_receives_only_declared_categories():
    s = Settings(sms_provider="aliyun", storage_url="s3://bucket")
    declared = {c.cls.category for t in registry.tables() for c in t.columns if c.cls.personal}
    for p in active_third_parties(s):
        assert p.purpose in PURPOSES
        assert set(p.data) <= declared, p.key
        assert p.region == MAINLAND


class TestWithAliyun:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_provider = "aliyun"
        return settings

    def test_sms_provider_appears_in_the_sharing_list(self, client):
        items = client.get("/api/v1/privacy/sharing-list").json()["items"]
        aliyun = next(i for i in items if "阿里云" in i["name"])
        assert aliyun["region"] == "中国境内"
        assert aliyun["data"] == ["手机号码"]
        assert any("友盟" in i["name"] for i in items)


def test_s3_storage_appears_in_the_sharing_list():
    items = lists.sharing_list(Settings(storage_url="s3://hrk-media"))
    assert any(i["name"] == "对象存储服务" for i in items)


# Data location (P14) -------------------------------------------------------------------------------


def test_processing_abroad_is_refused():
    s = Settings()
    with pytest.raises(DataLocationError):
        check_data_location(s, {"storage": "US"})
    with pytest.raises(DataLocationError):
        check_data_location(s, {"storage": MAINLAND, "sms": "HK"})
    check_data_location(s, {"storage": MAINLAND, "sms": MAINLAND})


def test_a_separate_consent_purpose_allows_it():
    s = Settings(cross_border_purpose="analytics_umeng")
    assert PURPOSES["analytics_umeng"].basis == "separate_consent"
    check_data_location(s, {"storage": "US"})


@pytest.mark.parametrize("purpose", ["personalization", "account", "security", "nope", ""])
def test_a_purpose_without_separate_consent_does_not(purpose):
    with pytest.raises(DataLocationError):
        check_data_location(Settings(cross_border_purpose=purpose), {"storage": "US"})


def test_lists_cli_prints_both_lists(ctx, settings, monkeypatch):
    import json

    from privacy_support import run_cli

    r = run_cli(monkeypatch, settings, "privacy", "lists")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["collection"] == lists.collection_list()
    assert any("友盟" in p["name"] for p in out["sharing"])
