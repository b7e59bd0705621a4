"""The purposes catalogue: why we process data, and the legal basis for each (P13, P28).

`basis` is one of: consent, separate_consent (PIPL 29/23/25: sensitive data, third parties,
public disclosure), contract (needed to provide what the user asked for), legal_obligation,
and the legal exceptions the policy lists, recorded as bases rather than hidden.

Only purposes the code serves are listed: no analytics SDK is integrated and no usage statistics are
collected, so there is no statistics purpose. Ledger rows of a purpose that is no longer listed
(e.g. the former `analytics_umeng`) stay as history and are ignored by `consent.states`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Basis = Literal[
    "consent",
    "separate_consent",
    "contract",
    "legal_obligation",
    "exception_security_operation",
]


@dataclass(frozen=True)
class Purpose:
    key: str
    label: str
    basis: Basis
    description: str
    clause: str
    default_granted: bool = False  # only ever True for contract / legal bases, never for consent

    @property
    def needs_consent(self) -> bool:
        return self.basis in ("consent", "separate_consent")


PURPOSES: dict[str, Purpose] = {
    p.key: p
    for p in [
        Purpose(
            "account", "注册登录与账号管理", "contract", "用手机号和短信验证码创建并登录账号", "P04", True
        ),
        Purpose(
            "basic_operation",
            "保障基础运行",
            "exception_security_operation",
            "记录设备型号、系统版本、网络类型等维持服务运行所必需的信息",
            "P03",
            True,
        ),
        Purpose(
            "security",
            "安全保障",
            "legal_obligation",
            "判断账号风险、核验身份、发现和处置安全事件，并依法留存日志",
            "P10",
            True,
        ),
        Purpose("profile", "个人资料展示", "contract", "保存并展示您主动填写的资料", "P04", True),
        Purpose(
            "real_name",
            "实名认证",
            "separate_consent",
            "核验姓名与身份证号；身份证号属于敏感个人信息",
            "P32",
            False,
        ),
        Purpose(
            "personalization",
            "个性化推荐",
            "consent",
            "根据设备信息、位置和搜索记录向您推荐内容",
            "P05",
            False,
        ),
        Purpose("location", "位置信息", "separate_consent", "客源搜索和个性化推荐使用您的位置", "P05", False),
    ]
}


def get(key: str) -> Purpose:
    return PURPOSES[key]
