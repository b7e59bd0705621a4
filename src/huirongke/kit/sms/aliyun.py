"""Alibaba Cloud (Aliyun) SMS: the SendSms action of the RPC-style HTTP API, version 2017-05-25.

Requests are signed by hand with Aliyun's RPC signature method V1 (HMAC-SHA1, SignatureVersion 1.0):

1. percent-encode every parameter name and value (RFC 3986: space -> %20, * -> %2A, ~ kept),
2. sort the pairs and join them as ``k=v&k=v`` (the canonicalized query),
3. StringToSign = METHOD + "&" + percent_encode("/") + "&" + percent_encode(canonicalized query),
4. Signature = base64(HMAC-SHA1(key=AccessKeySecret + "&", StringToSign)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

from huirongke.kit.clock import utcnow
from huirongke.kit.sms.base import SmsMessage, SmsSendError
from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts

API_VERSION = "2017-05-25"
DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
MAINLAND_PREFIX = "+86"


#: Aliyun receives the numbers it texts: the sign-in, step-up and case codes to the user's own phone,
#: and the guardian-consent code to the guardian's phone.
ALIYUN_SMS = ThirdPartyFacts(
    key="aliyun_sms",
    name="阿里云短信服务",
    company="阿里云计算有限公司",
    region=MAINLAND,
    purpose="account",
    data=("user.contact.phone", "guardian.contact.phone"),
    scenario="发送登录、身份核验和监护人同意的短信验证码",
    manner="服务端 API 调用（委托处理），只传送手机号码和验证码",
    basis="委托处理，履行与您的服务约定所必需",
)


def percent_encode(s: str) -> str:
    """Aliyun's RFC 3986 encoding: only A-Z a-z 0-9 - _ . ~ stay as they are, the rest is UTF-8 %XX."""
    # quote() with no extra safe characters keeps exactly the RFC 3986 unreserved set,
    # and writes a space as %20 (never "+") and "*" as %2A.
    return quote(s, safe="")


def canonicalized_query(params: Mapping[str, str]) -> str:
    """The sorted, encoded ``k=v&k=v`` string. A ``Signature`` parameter is never part of it."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items() if k != "Signature")
    return "&".join(f"{k}={v}" for k, v in pairs)


def string_to_sign(params: Mapping[str, str], method: str = "GET") -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def sign_rpc_request(params: Mapping[str, str], secret: str, method: str = "GET") -> str:
    """The base64 HMAC-SHA1 signature of `params`, keyed with the AccessKeySecret plus "&"."""
    key = (secret + "&").encode()
    digest = hmac.new(key, string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _uuid_nonce() -> str:
    return str(uuid.uuid4())


class AliyunSmsProvider:
    """Sends template messages through Aliyun SMS. Only mainland China (+86) numbers are accepted."""

    name = "aliyun_sms"
    #: Aliyun receives the numbers it texts (P25, R01).
    third_party: ThirdPartyFacts | None = ALIYUN_SMS
    #: Where the provider processes data (P14): the region it declares.
    region = ALIYUN_SMS.region

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_codes: Mapping[str, str],
        region_id: str = "cn-hangzhou",
        endpoint: str = DEFAULT_ENDPOINT,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        nonce: Callable[[], str] = _uuid_nonce,
    ) -> None:
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._sign_name = sign_name
        self._template_codes = dict(template_codes)
        self._region_id = region_id
        self._endpoint = endpoint
        self._timeout = timeout
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._clock = clock
        self._nonce = nonce

    def signed_params(self, message: SmsMessage) -> dict[str, str]:
        """Every query parameter of the SendSms call for `message`, Signature included."""
        template_code = self._template_codes.get(message.template)
        if template_code is None:
            raise SmsSendError(f"aliyun_sms: no TemplateCode configured for template {message.template!r}")
        if not message.phone.startswith(MAINLAND_PREFIX):
            # Domestic sign names and templates only reach mainland numbers; say so without the number.
            raise SmsSendError("aliyun_sms: only mainland China (+86) numbers are supported")
        params = {
            # Common parameters of every RPC call.
            "AccessKeyId": self._access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": self._region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self._nonce(),
            "SignatureVersion": "1.0",
            "Timestamp": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            # SendSms itself.
            "PhoneNumbers": message.phone.removeprefix(MAINLAND_PREFIX),
            "SignName": self._sign_name,
            "TemplateCode": template_code,
        }
        if message.params:
            params["TemplateParam"] = json.dumps(message.params, ensure_ascii=False, separators=(",", ":"))
        params["Signature"] = sign_rpc_request(params, self._access_key_secret)
        return params

    def stage(self, session: Session, message: SmsMessage) -> None:
        """Nothing to record: the carrier's receipt is the record."""

    def send(self, message: SmsMessage) -> None:
        params = self.signed_params(message)
        # Build the query ourselves so the wire encoding is the one that was signed (%20, not "+").
        query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
        try:
            response = self._client.get(f"{self._endpoint}?{query}", timeout=self._timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # The request URL holds the phone number, so neither it nor the original error is passed on.
            raise SmsSendError(f"aliyun_sms: request failed ({type(exc).__name__})") from None
        try:
            body = response.json()
            code = str(body["Code"])
        except (ValueError, KeyError, TypeError):
            raise SmsSendError(f"aliyun_sms: unreadable response (HTTP {response.status_code})") from None
        if code != "OK":
            # Aliyun's Message text is left out on purpose: it may quote the number back.
            request_id = body.get("RequestId", "-")
            status = response.status_code
            raise SmsSendError(
                f"aliyun_sms: SendSms refused, Code={code} (HTTP {status}, RequestId={request_id})"
            )
