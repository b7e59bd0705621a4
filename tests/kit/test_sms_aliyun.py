"""The Aliyun SMS adapter: hand-written RPC signing checked against Aliyun's documented examples,
and the outgoing SendSms request checked through a fake HTTP peer (httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from huirongke.kit.sms.aliyun import (
    AliyunSmsProvider,
    percent_encode,
    sign_rpc_request,
    string_to_sign,
)
from huirongke.kit.sms.base import SmsMessage, SmsSendError

PHONE = "+8613800138000"
DIGITS = "13800138000"
SECRET = "test-secret"

# --- Documented signing examples -------------------------------------------------------------------

# The worked example of Aliyun's "RPC API signature" docs (ECS DescribeRegions, AccessKeyId testid,
# AccessKeySecret testsecret). The docs spell the timestamp parameter "TimeStamp"; that capital S is
# part of the vector. (With "Timestamp" the signature would be different.) The docs print the
# StringToSign with raw "&" between pairs, but the signature they give is the one over the %26 form.
DESCRIBE_REGIONS = {
    "TimeStamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}

# The SMS product's own "HTTP protocol and signature" example: SendSms with AccessKeyId testId and
# AccessKeySecret testSecret (mixed case), and a Chinese sign name, so UTF-8 encoding is exercised too.
SEND_SMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
SEND_SMS_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou"
    "%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1"
    "%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8"
    "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466"
    "%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007"
    "%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D"
    "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)


def test_documented_rpc_signature_vector() -> None:
    assert sign_rpc_request(DESCRIBE_REGIONS, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_documented_send_sms_signature_vector() -> None:
    assert string_to_sign(SEND_SMS) == SEND_SMS_STRING_TO_SIGN
    assert sign_rpc_request(SEND_SMS, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_signature_ignores_an_existing_signature_param_and_input_order() -> None:
    reordered = dict(reversed(list(SEND_SMS.items())))
    stale = {**reordered, "Signature": "stale"}
    assert sign_rpc_request(stale, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_signature_depends_on_method() -> None:
    assert sign_rpc_request(SEND_SMS, "testSecret", method="POST") != sign_rpc_request(SEND_SMS, "testSecret")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("", ""),
        ("AZaz09-_.~", "AZaz09-_.~"),  # the unreserved set stays as it is, tilde included
        ("a b", "a%20b"),  # space is %20, never "+"
        ("*", "%2A"),
        ("+", "%2B"),
        ("/", "%2F"),
        ("=&:%", "%3D%26%3A%25"),
        ('{"code":"1"}', "%7B%22code%22%3A%221%22%7D"),
        ("阿", "%E9%98%BF"),  # UTF-8 bytes, upper-case hex
    ],
)
def test_percent_encode(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


# --- The provider ----------------------------------------------------------------------------------

FIXED_NOW = datetime(2026, 3, 1, 8, 30, 5, tzinfo=UTC)
MESSAGE = SmsMessage(phone=PHONE, template="login_code", params={"code": "123456"}, text="验证码123456")


def make_provider(
    transport: httpx.MockTransport | None = None, clock: Callable[[], datetime] = lambda: FIXED_NOW
) -> AliyunSmsProvider:
    transport = transport or httpx.MockTransport(lambda request: httpx.Response(200, json=ok_body()))
    return AliyunSmsProvider(
        access_key_id="LTAI-test",
        access_key_secret=SECRET,
        sign_name="汇容客",
        template_codes={"login_code": "SMS_100001"},
        client=httpx.Client(transport=transport),
        clock=clock,
        nonce=lambda: "nonce-1",
    )


def ok_body() -> dict[str, str]:
    return {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"}


def capture(requests: list[httpx.Request], response: httpx.Response) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return response

    return httpx.MockTransport(handler)


def test_provider_identity() -> None:
    provider = make_provider()
    assert provider.name == "aliyun_sms"
    assert provider.region == "CN-mainland"


def test_send_builds_a_signed_send_sms_request() -> None:
    requests: list[httpx.Request] = []
    make_provider(capture(requests, httpx.Response(200, json=ok_body()))).send(MESSAGE)

    assert len(requests) == 1
    request = requests[0]
    assert request.method == "GET"
    assert request.url.scheme == "https"
    assert request.url.host == "dysmsapi.aliyuncs.com"
    assert request.url.path == "/"

    params = dict(parse_qsl(urlsplit(str(request.url)).query, strict_parsing=True))
    assert params == {
        "AccessKeyId": "LTAI-test",
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "nonce-1",
        "SignatureVersion": "1.0",
        "Timestamp": "2026-03-01T08:30:05Z",
        "Version": "2017-05-25",
        "PhoneNumbers": DIGITS,
        "SignName": "汇容客",
        "TemplateCode": "SMS_100001",
        "TemplateParam": '{"code":"123456"}',
        "Signature": params["Signature"],
    }
    # The server's check: re-sign everything but Signature with the shared secret.
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    assert params["Signature"] == sign_rpc_request(unsigned, SECRET)
    assert params["Signature"] != sign_rpc_request(unsigned, "another-secret")


def test_send_encodes_the_query_the_way_it_was_signed() -> None:
    requests: list[httpx.Request] = []
    message = SmsMessage(phone=PHONE, template="login_code", params={"name": "张 三*"}, text="")
    make_provider(capture(requests, httpx.Response(200, json=ok_body()))).send(message)

    raw_query = requests[0].url.query.decode("ascii")
    assert "+" not in raw_query  # a space must travel as %20
    # Compact JSON, UTF-8 percent-encoded, space as %20 and "*" as %2A.
    assert "TemplateParam=%7B%22name%22%3A%22%E5%BC%A0%20%E4%B8%89%2A%22%7D&" in raw_query


def test_timestamp_is_utc_whatever_the_clock_zone() -> None:
    beijing = timezone(timedelta(hours=8))
    provider = make_provider(clock=lambda: datetime(2026, 3, 1, 16, 30, 5, tzinfo=beijing))
    assert provider.signed_params(MESSAGE)["Timestamp"] == "2026-03-01T08:30:05Z"


def test_empty_params_send_no_template_param() -> None:
    message = SmsMessage(phone=PHONE, template="login_code", params={}, text="")
    assert "TemplateParam" not in make_provider().signed_params(message)


def test_non_ok_code_raises_without_the_phone_number() -> None:
    # Aliyun answers refusals with HTTP 200 and a Code; here its Message even echoes the number.
    body = {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": f"触发号码天级流控 {DIGITS}", "RequestId": "R-1"}
    provider = make_provider(httpx.MockTransport(lambda request: httpx.Response(200, json=body)))

    with pytest.raises(SmsSendError) as caught:
        provider.send(MESSAGE)

    assert "isv.BUSINESS_LIMIT_CONTROL" in str(caught.value)
    assert "R-1" in str(caught.value)
    assert DIGITS not in str(caught.value)


def test_http_error_with_aliyun_code_raises() -> None:
    body = {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched."}
    provider = make_provider(httpx.MockTransport(lambda request: httpx.Response(400, json=body)))

    with pytest.raises(SmsSendError, match="SignatureDoesNotMatch") as caught:
        provider.send(MESSAGE)
    assert DIGITS not in str(caught.value)


def test_unreadable_response_raises() -> None:
    bad_gateway = httpx.Response(502, text="<html>Bad gateway</html>")
    provider = make_provider(httpx.MockTransport(lambda request: bad_gateway))

    with pytest.raises(SmsSendError, match="HTTP 502"):
        provider.send(MESSAGE)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout])
def test_transport_error_raises_without_the_phone_number(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"cannot reach {request.url}", request=request)  # the URL holds the number

    with pytest.raises(SmsSendError) as caught:
        make_provider(httpx.MockTransport(handler)).send(MESSAGE)

    assert error.__name__ in str(caught.value)
    assert DIGITS not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_unknown_template_raises_before_any_request() -> None:
    requests: list[httpx.Request] = []
    provider = make_provider(capture(requests, httpx.Response(200, json=ok_body())))
    message = SmsMessage(phone=PHONE, template="guardian_code", params={"code": "1"}, text="")

    with pytest.raises(SmsSendError, match="guardian_code"):
        provider.send(message)
    assert requests == []


def test_non_mainland_number_raises_before_any_request() -> None:
    requests: list[httpx.Request] = []
    provider = make_provider(capture(requests, httpx.Response(200, json=ok_body())))
    message = SmsMessage(phone="+85291234567", template="login_code", params={"code": "1"}, text="")

    with pytest.raises(SmsSendError) as caught:
        provider.send(message)
    assert "91234567" not in str(caught.value)
    assert requests == []
