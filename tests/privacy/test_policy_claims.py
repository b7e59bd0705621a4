"""Every factual claim the policy template makes, checked against the settings or the code that keeps it.

The policy is rendered twice: with the default settings and with every stated setting changed. A
sentence typed into the template (a fixed "15 天" or a fixed hotline) fails the second rendering; a
setting the text no longer follows fails both. Claims about behaviour are checked against the code
(the consent gate's 48 h, the case deadline, the data map's encryption flags) or through the API.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from privacy_support import count, submit_real_name

from conftest import auth, sign_up
from huirongke.accounts.identity import ADULT_AGE
from huirongke.accounts.profile import review_real_name
from huirongke.config import Settings
from huirongke.kit import workdays
from huirongke.privacy import assessments, cases, consent, registry, stores
from huirongke.privacy.policy import REPLY_DAYS, REPLY_WORKDAYS, policy_facts, render_policy
from huirongke.privacy.purposes import PURPOSES

CHANGED = {
    "company_name": "杭州测试网络科技有限公司",
    "company_address": "浙江省杭州市西湖区文三路 1 号",
    "hotline": "400-1234-567",
    "contact_email": "dpo@example.cn",
    "jurisdiction_city": "杭州市",
    "cancellation_cooling_off_days": 9,
    "sms_code_ttl_seconds": 420,
    "sms_max_attempts": 4,
    "audit_retention_days": 500,
    "log_retention_days": 200,
    "backup_retention_days": 45,
    "export_interval_hours": 36,
    "export_ttl_hours": 12,
}


@pytest.fixture(params=["defaults", "changed"])
def stated(request: pytest.FixtureRequest) -> tuple[Settings, str]:
    settings = Settings() if request.param == "defaults" else Settings(**CHANGED)  # type: ignore[arg-type]
    return settings, render_policy(settings, 3, "2026-12-02")


def found(pattern: str, text: str) -> list[str]:
    """Every capture of `pattern` in the text; the claim must be made at least once."""
    hits = re.findall(pattern, text, flags=re.MULTILINE)
    assert hits, f"the policy no longer says {pattern!r}"
    return hits


# Operator facts (P43) -----------------------------------------------------------------------------


def test_the_operator_facts_are_the_configured_ones(stated):
    s, text = stated
    assert set(found(r"^- 运营者：(.+)$", text)) == {s.company_name}
    assert set(found(r"由(.+?)负责开发和运营", text)) == {s.company_name}
    assert set(found(r"^- 联系地址：(.+)$", text)) == {s.company_address}
    assert set(found(r"^- 电子邮箱：(.+)$", text)) == {s.contact_email}
    assert set(found(r"^- 客服与投诉热线：(.+)$", text)) == {s.hotline}
    assert set(found(r"投诉举报热线：(.+?)。", text)) == {s.hotline}
    assert set(found(r"欢迎通过热线(.+?)或第十部分", text)) == {s.hotline}
    assert set(found(r"提交(.+?)具有管辖权的人民法院", text)) == {s.jurisdiction_city}
    assert set(re.findall(r"400-\d{3,4}-\d{3,4}", text)) == {s.hotline}, "no other hotline anywhere"


# Periods and limits -------------------------------------------------------------------------------


def test_the_cooling_off_period_is_the_configured_one(stated):
    s, text = stated
    assert found(r"提交申请后有(\d+)天冷静期", text) == [str(s.cancellation_cooling_off_days)]
    instant = render_policy(Settings(cancellation_cooling_off_days=0), 1, "2026-12-02")
    assert "不设冷静期" in instant and "天冷静期" not in instant


def test_the_sms_code_validity_and_attempts_are_the_configured_ones(stated):
    s, text = stated
    assert s.sms_code_ttl_seconds % 60 == 0
    assert found(r"验证码在(\d+)分钟内有效，输错(\d+)次即作废", text) == [
        (str(s.sms_code_ttl_seconds // 60), str(s.sms_max_attempts))
    ]


def test_a_refused_permission_is_not_asked_again_for_the_stated_hours(stated):
    _, text = stated
    hours = consent.ASK_AGAIN_AFTER / timedelta(hours=1)
    assert found(r"拒绝某项权限后，(\d+)小时内我们不会再次弹窗", text) == [str(int(hours))]


def test_the_log_and_audit_periods_are_the_configured_ones_and_at_least_six_months(stated):
    s, text = stated
    logs = next(x for x in stores.declared(s) if x.key == "log_files")
    log_days = registry.retention_delta(logs.retention)
    assert log_days is not None
    assert found(r"服务日志（[^）]*）保存(\d+)天", text) == [str(log_days.days)]
    assert found(r"安全审计记录（[^）]*）保存(\d+)天", text) == [str(s.audit_retention_days)]
    assert "两者都依照网络安全法律的要求保存不少于六个月" in text
    assert min(log_days.days, s.audit_retention_days) >= 183  # R10: six months


def test_the_backup_age_is_the_configured_one(stated):
    s, text = stated
    assert found(r"备份最多保存(\d+)天，到期删除", text) == [str(s.backup_retention_days)]
    assert "已注销用户的信息不会因恢复而重新出现" in text


def test_the_export_interval_and_download_validity_are_the_configured_ones(stated):
    s, text = stated
    assert found(r"每(\d+)小时可以申请一次导出；生成的文件在(\d+)小时内可以下载", text) == [
        (str(s.export_interval_hours), str(s.export_ttl_hours))
    ]


def test_the_reply_periods_are_the_case_deadlines(stated):
    _, text = stated
    assert (REPLY_DAYS, REPLY_WORKDAYS) == (cases.DEADLINE_DAYS, cases.DEADLINE_WORKDAYS)
    assert set(found(r"(\d+)天内给您答复", text)) == {str(cases.DEADLINE_DAYS)}
    assert set(found(r"(\d+)个工作日内", text)) == {str(cases.DEADLINE_WORKDAYS)}
    # and the deadline the code sets never falls after the promised number of calendar days
    calendar = workdays.load(None)
    day = date(2026, 1, 1)
    while day < date(2028, 1, 1):
        assert cases.reply_deadline(calendar, day) <= day + timedelta(days=cases.DEADLINE_DAYS), day
        day += timedelta(days=1)


def test_the_phone_number_is_kept_while_the_account_exists(stated):
    _, text = stated
    assert "手机号码：账号存续期间，我们需要保留您的手机号码用于登录和身份验证；账号注销后即予删除。" in text
    phone = next(c.cls for c in registry.by_name("users").columns if c.name == "phone_enc")
    assert (phone.retention, phone.erasure) == ("account", "delete")


def test_the_impact_assessments_are_the_recorded_ones(stated):
    _, text = stated
    years, titles = found(r"评估记录至少保存(\d+)年：(.+)。$", text)[0]
    assert int(years) == assessments.KEEP_YEARS == 3
    assert titles.split("；") == [a.title for a in assessments.INITIAL]
    assert {a.processing for a in assessments.INITIAL} == {"id_number", "minors", "location"}


def test_the_adult_age_is_the_code_s(stated):
    _, text = stated
    assert found(r"未满(\d+)周岁的用户，须在使用前征得父母或其他监护人的同意", text) == [str(ADULT_AGE)]


def test_every_number_in_the_text_is_a_checked_claim(stated):
    """A number typed into the template that no check above covers fails here."""
    s, text = stated
    facts = policy_facts(s)
    checked = {str(v) for k, v in facts.items() if isinstance(v, int) and k not in ("sms_code_ttl_seconds",)}
    checked |= {str(s.sms_code_ttl_seconds // 60), str(ADULT_AGE)}
    checked |= set(re.findall(r"\d+", s.hotline + s.company_address))
    not_ours = {
        "14": "PIPL's age for a child's information (a definition, R09)",
        "4": "the regulator's reporting time for a major incident (R08), an organisational duty",
        "138": "the masking example 138****8000",
        "8000": "the masking example 138****8000",
        "3": "the version number this test renders",
        "2026": "the effective date this test renders",
        "12": "the effective date this test renders",
        "02": "the effective date this test renders",
    }
    unexplained = set(re.findall(r"\d+", text)) - checked - set(not_ours)
    assert unexplained == set()


# Defaults, encryption, statistics, staff ----------------------------------------------------------


def test_every_option_is_off_by_default(client, stated):
    _, text = stated
    assert "所有选项默认都不勾选。" in text
    assert all(not p.default_granted for p in PURPOSES.values() if p.needs_consent)
    token, _ = sign_up(client)
    consents = client.get("/api/v1/privacy/consents", headers=auth(token))
    assert consents.status_code == 200, consents.text
    assert {c["purpose"]: c["granted"] for c in consents.json()} == {
        k: False for k, p in PURPOSES.items() if p.needs_consent
    }
    switches = client.get("/api/v1/me/privacy-settings", headers=auth(token))
    assert switches.status_code == 200, switches.text
    booleans = {k: v for k, v in switches.json().items() if isinstance(v, bool)}
    assert booleans == {"show_phone": False, "show_region": False, "personalized_recommendations": False}


def test_what_the_policy_says_is_encrypted_is_encrypted(stated):
    _, text = stated
    sentence = found(r"存储加密：(.+)，在数据库中加密保存。", text)[0]
    assert sentence == "手机号码、实名认证信息、监护人手机号码，以及昵称、性别、生日、所在地区和个人标签"
    named = {
        "手机号码",
        "真实姓名",
        "身份证号码",
        "监护人手机号码",
        "昵称",
        "性别",
        "生日",
        "所在地区",
        "个人标签",
    }
    columns = {
        f"{t.name}.{c.name}": c.cls.encrypted
        for t in registry.tables()
        for c in t.columns
        if c.cls.personal and c.cls.label in named
    }
    assert {label for t in registry.tables() for c in t.columns if (label := c.cls.label) in named} == named
    assert all(columns.values()), [k for k, v in columns.items() if not v]


def test_no_device_side_encryption_role_system_or_paper_consent_is_claimed(stated):
    _, text = stated
    for phrase in ("设备上加密", "岗位角色", "书面同意", "批量导出须经审批", "保密义务"):
        assert phrase not in text, phrase


def test_no_statistics_are_collected_and_no_sdk_is_claimed(client, stated):
    _, text = stated
    assert "没有集成任何第三方统计分析SDK，也不收集使用频次、崩溃记录、性能数据、安装来源等使用统计。" in text
    assert "友盟" not in text
    assert not any(word in (p.key + p.label) for p in PURPOSES.values() for word in ("统计", "analytics"))
    categories = {c.cls.category for t in registry.tables() for c in t.columns}
    assert not any(word in cat for cat in categories for word in ("usage", "analytics", "crash", "statistic"))
    assert client.get("/api/v1/privacy/sharing-list").json()["items"] == []


def test_staff_have_no_screen_in_the_app(client, stated):
    """Staff work through `huirongke cases …` and `realname …`; that each such read or decision is
    audited is proven by test_cases.py::test_cli_list_show_resolve and the real-name review tests."""
    _, text = stated
    assert "应用和网页中没有供工作人员查看他人信息的入口" in text
    assert "查看您提交的申请内容、办理申请或审核实名认证时，每一次操作都会写入安全审计记录" in text
    paths = [getattr(r, "path", "") for r in client.app.routes]
    assert paths and not [p for p in paths if re.search(r"admin|staff|console|operator", p)]


def test_a_real_name_review_by_staff_is_audited(client, ctx):
    token, user = sign_up(client)
    submit_real_name(client, token)
    with ctx.db.session() as s:
        review_real_name(s, user["id"], True, staff_id="staff-3")
    where = (
        "action = 'real_name.verified' AND actor_type = 'staff' AND actor_id = 'staff-3' AND subject_id = :u"
    )
    assert count(ctx, "audit_events", where, u=user["id"]) == 1


def test_transport_security_is_enforced_by_the_server(client, stated):
    _, text = stated
    assert "客户端与服务器之间的通信使用TLS（HTTPS）加密" in text
    assert client.get("/healthz").headers["strict-transport-security"].startswith("max-age=")


#: The features the policy names as not yet provided, and the API paths that would provide them.
_NOT_YET_PROVIDED = {
    "内容推荐与消息推送": ("/api/v1/feed", "/api/v1/notifications"),
    "第（五）": ("/api/v1/posts",),
    "（六）": ("/api/v1/customers", "/api/v1/leads", "/api/v1/posters"),
    "（七）": ("/api/v1/follows", "/api/v1/users/{user_id}/follow"),
    "第（十）项": ("/api/v1/conversations", "/api/v1/messages"),
}


def test_features_named_as_not_provided_have_no_api_yet(client, stated):
    """The policy says which described features the current version does not provide. When one of
    them gets its API, this fails until the notice says so (the policy states only what the code does)."""
    _settings, text = stated
    notice = next(p for p in text.split("\n\n") if "当前版本尚未提供" in p)
    paths = set(client.app.openapi()["paths"])
    for words, feature_paths in _NOT_YET_PROVIDED.items():
        assert words in notice, words
        built = [p for p in paths if p.startswith(feature_paths)]
        assert built == [], f"{words}: the API exists now ({built}); update the policy's notice"
