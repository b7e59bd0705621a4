"""Demo data: realistic zh_CN agents who already agreed to the current policy."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import select

from huirongke.accounts import sealed_profile
from huirongke.accounts.age import ADULT
from huirongke.accounts.models import User
from huirongke.accounts.signin import _register
from huirongke.config import Settings
from huirongke.context import build_context
from huirongke.kit.phone import mask

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "晓东",
    "丽华",
]
_REGIONS = [
    "福建省厦门市",
    "福建省福州市",
    "广东省深圳市",
    "浙江省杭州市",
    "上海市",
    "北京市",
    "江苏省苏州市",
    "四川省成都市",
]
_TAGS = [
    "保险顾问",
    "房产经纪",
    "理财规划",
    "汽车销售",
    "教育咨询",
    "家装设计",
    "社群运营",
    "十年经验",
    "客户至上",
    "金牌销售",
]


def seed(settings: Settings, count: int) -> list[str]:
    rng = random.Random(20261128)
    ctx = build_context(settings)
    lines = []
    with ctx.db.session() as session:
        ctx.policy.ensure_seeded(session, settings)
        version = ctx.policy.current(session).version
        for i in range(count):
            phone = f"+86139{20260000 + i:08d}"
            bidx = ctx.phone_bidx(phone)
            if session.scalar(select(User.id).where(User.phone_bidx == bidx)):
                lines.append(f"已存在：{mask(phone)}")
                continue
            registered = _register(ctx, session, phone, bidx, ADULT, None)  # birthdays below: 1970–2000
            user = session.get_one(User, registered.id)
            nickname = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
            cipher = ctx.keys.cipher(session, user.id)
            for name, value in {
                "nickname": nickname,
                "gender": rng.choice(["male", "female"]),
                "birthday": date(rng.randint(1970, 2000), rng.randint(1, 12), rng.randint(1, 28)),
                "region": rng.choice(_REGIONS),
                "tags": rng.sample(_TAGS, 3),
            }.items():
                sealed_profile.write(cipher, user, name, value)  # sealed like every profile field
            user.show_region = rng.random() < 0.7
            user.show_phone = rng.random() < 0.3
            ctx.policy.agree(session, user.id, version, channel="demo")
            lines.append(f"已创建演示用户 {nickname}（{phone.removeprefix('+86')}，id {user.id}）")
    lines.append("演示账号可用短信验证码登录：在登录页获取验证码，验证码会显示在控制台和开发发件箱中。")
    return lines
