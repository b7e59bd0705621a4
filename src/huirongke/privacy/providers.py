"""Third parties (P02, P14, P25, R01): every SDK and provider that receives personal data.

The sharing list is generated from these declarations; the region check at start-up reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from huirongke.config import Settings

MAINLAND = "CN-mainland"


@dataclass(frozen=True)
class ThirdParty:
    key: str
    name: str
    company: str
    region: str
    purpose: str  # a key of the purposes catalogue
    data: tuple[str, ...]  # data-map categories it receives
    scenario: str
    manner: str  # how it receives data: SDK, API call, storage
    basis: str


def active_third_parties(settings: Settings) -> list[ThirdParty]:
    parties = [
        ThirdParty(
            key="umeng",
            name="友盟+ 统计分析 SDK",
            company="友盟同欣（北京）科技有限公司",
            region=MAINLAND,
            purpose="analytics_umeng",
            data=("device.id", "device.model", "device.os_version", "device.network.type"),
            scenario="在您单独同意后，统计应用使用情况、校准报表、提供基础反作弊",
            manner="移动端 SDK 采集，设备标识经假名化处理",
            basis="单独同意，可随时撤回",
        )
    ]
    if settings.sms_provider == "aliyun":
        parties.append(
            ThirdParty(
                key="aliyun_sms",
                name="阿里云短信服务",
                company="阿里云计算有限公司",
                region=MAINLAND,
                purpose="account",
                data=("user.contact.phone",),
                scenario="发送登录验证码及身份核验短信",
                manner="服务端 API 调用（委托处理）",
                basis="委托处理，履行与您的服务约定所必需",
            )
        )
    if settings.storage_url and settings.storage_url.startswith("s3://"):
        parties.append(
            ThirdParty(
                key="object_storage",
                name="对象存储服务",
                company="云存储服务商",
                region=MAINLAND,
                purpose="profile",
                data=("user.media.file",),
                scenario="存储您上传的头像、图片和视频",
                manner="服务端 API 调用（委托处理）",
                basis="委托处理，履行与您的服务约定所必需",
            )
        )
    return parties


class DataLocationError(RuntimeError):
    pass


def check_data_location(settings: Settings, regions: dict[str, str]) -> None:
    """P14: refuse to start when data would be stored or processed outside mainland China, unless a
    cross-border purpose is declared; that purpose must be one users consent to separately."""
    from huirongke.privacy.purposes import PURPOSES

    abroad = {name: region for name, region in regions.items() if region != MAINLAND}
    for p in active_third_parties(settings):
        if p.region != MAINLAND:
            abroad[p.key] = p.region
    if not abroad:
        return
    purpose = PURPOSES.get(settings.cross_border_purpose or "")
    if purpose is None or purpose.basis != "separate_consent":
        names = ", ".join(sorted(abroad))
        raise DataLocationError(
            f"refusing to start: {names} would process personal data outside mainland China. "
            "Set HRK_CROSS_BORDER_PURPOSE to a declared purpose with separate consent, "
            "or use a mainland region."
        )
