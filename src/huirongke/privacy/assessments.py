"""Personal-information protection impact assessments (个人信息保护影响评估, R11, PIPL 55-56).

One record per assessment of a sensitive processing: what is processed and why, the risks, the
measures the code takes, and the conclusion. The records are operator text, not personal data (the
assessor is a role, never a person's name), so the data map's retention walk never touches them.
PIPL 56 asks that they be kept at least three years: nothing in the product deletes them.
`keep_until` (three calendar years after the assessment) is the first day an operator may delete a
record that a newer assessment of the same processing has replaced.

Migration 0004 writes the initial assessments (`INITIAL`); `seed` writes any that are missing, for
a database whose records were removed. `huirongke privacy assessments` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from huirongke.kit.clock import utcnow
from huirongke.kit.db import Base, UTCDateTime
from huirongke.kit.ids import new_id
from huirongke.privacy.datamap import NOT_PERSONAL, SubjectLink

#: PIPL 56: assessment reports and processing records are kept at least three years.
KEEP_YEARS = 3
#: Each assessment is reviewed within a year, and again before the processing changes.
REVIEW_AFTER = timedelta(days=365)


class ImpactAssessment(Base):
    """An impact assessment of one sensitive processing (R11). Operator text; kept ≥ 3 years."""

    __tablename__ = "impact_assessments"
    __subject__ = SubjectLink(None)
    __table_args__ = (Index("ix_impact_assessments_processing_assessed_at", "processing", "assessed_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=NOT_PERSONAL)
    #: Which processing: "id_number", "minors", "location".
    processing: Mapped[str] = mapped_column(String(32), info=NOT_PERSONAL)
    title: Mapped[str] = mapped_column(String(100), info=NOT_PERSONAL)
    #: What is processed, for what purpose, and how.
    scope: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    risks: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    measures: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    conclusion: Mapped[str] = mapped_column(Text, info=NOT_PERSONAL)
    #: The assessing role (e.g. 个人信息保护负责人), never a person's name.
    assessor: Mapped[str] = mapped_column(String(100), info=NOT_PERSONAL)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, info=NOT_PERSONAL)
    review_due: Mapped[date] = mapped_column(Date, info=NOT_PERSONAL)

    @property
    def keep_until(self) -> datetime:
        """Three calendar years after the assessment (a 29 February moves to 1 March)."""
        return years_after(self.assessed_at, KEEP_YEARS)


def years_after(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=moment.year + years, month=3, day=1)


@dataclass(frozen=True)
class Assessment:
    processing: str
    title: str
    scope: str
    risks: str
    measures: str
    conclusion: str
    assessor: str = "个人信息保护负责人"


INITIAL: tuple[Assessment, ...] = (
    Assessment(
        processing="id_number",
        title="实名认证：真实姓名与身份证号码",
        scope=(
            "用户在“实名认证”中提交真实姓名和身份证号码（敏感个人信息），用于核验身份；"
            "身份证号码中的出生日期写入账户生日，用于判断用户是否未满 18 周岁。"
            "认证申请由工作人员通过运维命令审核通过或驳回。"
        ),
        risks=(
            "身份证号码泄露可能导致身份被冒用、诈骗或骚扰；数据库文件、备份或日志被他人取得时可能泄露；"
            "用户可能提交他人的证件；在用户未明确同意时收集将违反单独同意的要求。"
        ),
        measures=(
            "1. 单独同意：用户未同意“实名认证”用途时，提交接口返回 428 consent_required，不收集任何内容。\n"
            "2. 加密存储：姓名和身份证号码以该用户的数据密钥（AES-GCM）加密后存入数据库；"
            "按号码检索只使用带密钥的盲索引（HMAC），数据库中没有明文。\n"
            "3. 最小展示：接口只返回掩码后的号码（前 3 位与后 4 位）。\n"
            "4. 日志脱敏：日志写入前，身份证号码、手机号码和令牌一律被替换；"
            "访问日志只记录路由模板，不记录请求内容。\n"
            "5. 审计：提交、审核通过与驳回都写入审计日志；认证通过后信息不可更改。\n"
            "6. 撤回与注销：撤回“实名认证”同意时，删除仅为该用途保存的实名信息；"
            "注销后删除该用户的数据密钥，加密数据随之无法解密。"
        ),
        conclusion="在上述措施下，处理目的明确、必要，风险可控，可以处理。处理方式变化时须重新评估。",
    ),
    Assessment(
        processing="minors",
        title="未成年人（含不满十四周岁儿童）的个人信息",
        scope=(
            "当账户生日（用户填写或来自身份证号码）表明用户未满 18 周岁时，处理其账户与资料信息，"
            "并为取得监护人同意处理监护人的手机号码。监护人可以为孩子申请导出或删除其个人信息。"
        ),
        risks=(
            "未成年人可能在监护人不知情的情况下使用社交和营销功能，或自行作出同意；"
            "他人可能冒充监护人；未成年人的个人信息泄露造成的伤害更大。"
        ),
        measures=(
            "1. 默认受限：未满 18 周岁且尚无监护人同意的账户只能使用个人资料和监护人同意流程，"
            "其他功能返回 403 guardian_consent_required；受限期间不能自行同意任何用途。\n"
            "2. 监护人核验：监护人同意须以发送到监护人手机的短信验证码确认，且该号码不能是本账户的号码。\n"
            "3. 加密存储：监护人手机号码以用户数据密钥加密，检索只用盲索引；生日等资料字段同样加密存储。\n"
            "4. 监护人的权利：监护人凭手机验证码可为孩子申请数据导出或删除账户。\n"
            "5. 审计：监护人同意与监护人的申请写入审计日志。"
        ),
        conclusion="在上述措施下风险可控，可以处理。面向未成年人的新功能上线前须重新评估。",
    ),
    Assessment(
        processing="location",
        title="位置信息",
        scope=(
            "隐私政策声明了“位置信息”用途（客源搜索和个性化推荐），需要用户单独同意并授予系统位置权限。"
            "当前版本尚未实现任何位置信息的收集或处理：没有接收位置的接口，也没有存放位置的数据表；"
            "上传的图片经重新编码，EXIF 与 GPS 等元数据被去除。"
        ),
        risks=(
            "精确位置可以推断住址、工作地点和行踪，泄露或滥用可能危及人身安全；"
            "在权限撤回后继续收集将违反“撤回后立即停止收集”的承诺。"
        ),
        measures=(
            "1. 目前不收集：没有任何代码读取或保存用户位置。\n"
            "2. 上线条件：位置功能只有在用户同意“位置信息”用途（否则返回 428 consent_required）"
            "且客户端报告的系统位置权限为“已授权”时才可收集；客户端报告撤回或拒绝后立即停止。\n"
            "3. 上线前须按实际实现重新评估，并更新本记录与隐私政策。"
        ),
        conclusion="当前不处理位置信息，无现实风险；位置功能上线前必须完成新的评估。",
    ),
)


def initial_rows(now: datetime) -> list[dict[str, Any]]:
    """The initial assessments as table rows, assessed at `now` (migration 0004 and `seed`)."""
    return [
        {
            "id": new_id(),
            "processing": a.processing,
            "title": a.title,
            "scope": a.scope,
            "risks": a.risks,
            "measures": a.measures,
            "conclusion": a.conclusion,
            "assessor": a.assessor,
            "assessed_at": now,
            "review_due": (now + REVIEW_AFTER).date(),
        }
        for a in INITIAL
    ]


def seed(session: Session) -> list[ImpactAssessment]:
    """Write the initial assessment of every processing that has none. Returns what it wrote."""
    have = set(session.scalars(select(ImpactAssessment.processing).distinct()))
    added = [ImpactAssessment(**row) for row in initial_rows(utcnow()) if row["processing"] not in have]
    session.add_all(added)
    session.flush()
    return added


def listed(session: Session) -> list[ImpactAssessment]:
    """Every assessment, by processing, newest first within each."""
    return list(
        session.scalars(
            select(ImpactAssessment).order_by(
                ImpactAssessment.processing, ImpactAssessment.assessed_at.desc()
            )
        )
    )
