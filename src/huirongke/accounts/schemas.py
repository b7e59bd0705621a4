"""Request and response bodies of the accounts API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from huirongke.kit.schemas import Flag


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChallengeAnswer(Strict):
    """A solved proof-of-work challenge (`kit/challenge.py`), from a 429 `challenge_required`."""

    id: str = Field(max_length=128)
    solution: str = Field(max_length=32)


class SmsCodeRequest(Strict):
    phone: str = Field(max_length=32)
    #: The answer to the challenge a previous 429 `challenge_required` gave (docs/abuse.md).
    challenge: ChallengeAnswer | None = None
    #: The device asking (as in sign-in): one that signed in to the number's account before is never
    #: held to the number's daily ceiling, nor challenged.
    device: DeviceIn | None = None


class SmsCodeSent(BaseModel):
    expires_in: int
    resend_after: int


class DeviceIn(Strict):
    model: str | None = Field(default=None, max_length=64)
    os_version: str | None = Field(default=None, max_length=64)
    device_id: str | None = Field(default=None, max_length=128)
    network_type: str | None = Field(default=None, max_length=16)


class AgeIn(Strict):
    """The age gate of a registration (P42, R09): `{"adult": true}` or `{"birth_month": "YYYY-MM"}`."""

    adult: Flag | None = None
    birth_month: str | None = Field(default=None, max_length=7, examples=["2008-05"])


class SignInRequest(Strict):
    phone: str = Field(max_length=32)
    code: str | None = Field(default=None, max_length=16)
    password: str | None = Field(default=None, max_length=128)
    accept_policy_version: int | None = None
    device: DeviceIn | None = None
    #: Registration only (a returning user sends none; one sent anyway is ignored).
    age: AgeIn | None = None


class RealNameOut(BaseModel):
    status: Literal["pending", "verified", "rejected"]
    name_masked: str
    id_number_masked: str
    submitted_at: datetime
    verified_at: datetime | None


class MeOut(BaseModel):
    id: str
    phone: str | None
    nickname: str | None
    avatar_media_id: str | None
    avatar_url: str | None
    gender: Literal["male", "female", "other"] | None
    birthday: date | None
    tags: list[str]
    region: str | None
    has_password: bool
    real_name: RealNameOut | None
    policy_version: int | None
    created_at: datetime


class SessionOut(BaseModel):
    token: str
    user: MeOut
    policy_update_required: bool


class MePatch(Strict):
    nickname: str | None = Field(default=None, min_length=1, max_length=20)
    gender: Literal["male", "female", "other"] | None = None
    birthday: date | None = None
    tags: list[str] | None = Field(default=None, max_length=10)
    region: str | None = Field(default=None, max_length=32)
    avatar_media_id: str | None = Field(default=None, max_length=32)


class PrivacySettings(BaseModel):
    """`personalized_recommendations` is the `personalization` consent itself (P05), read and written
    through the consent ledger; the other two are columns of the user."""

    show_phone: bool
    show_region: bool
    personalized_recommendations: bool


class PrivacySettingsPatch(Strict):
    show_phone: Flag | None = None
    show_region: Flag | None = None
    personalized_recommendations: Flag | None = None


class PublicProfile(BaseModel):
    id: str
    nickname: str
    avatar_url: str | None
    gender: Literal["male", "female", "other"] | None
    tags: list[str]
    phone: str | None = None
    region: str | None = None
    real_name_verified: bool
    cancelled: bool = False


class PasswordSet(Strict):
    password: str = Field(min_length=8, max_length=128)
    current_password: str | None = Field(default=None, max_length=128)
    #: Revoke every other session of the account once the password is set (issue 8).
    sign_out_others: Flag = False


class StepUpIn(Strict):
    code: str = Field(min_length=4, max_length=16)


class StepUpOut(BaseModel):
    verified_until: datetime


class RealNameSubmit(Strict):
    name: str = Field(min_length=2, max_length=30)
    id_number: str = Field(min_length=18, max_length=18)


class DeviceOut(BaseModel):
    id: str
    model: str | None
    os_version: str | None
    network_type: str | None
    first_seen_at: datetime
    last_seen_at: datetime


class SessionInfo(BaseModel):
    id: str
    current: bool
    method: str
    device: DeviceOut | None
    login_ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
