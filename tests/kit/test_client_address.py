"""Client addresses through trusted proxies only (HRK_FORWARDED_ALLOW_IPS, issue 8 part 5)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from huirongke.accounts.models import AuthSession
from huirongke.app import create_app
from huirongke.config import Settings
from huirongke.kit.client_address import TrustedProxies, parse_ip

PROXY = "10.0.0.5"


def test_nothing_is_trusted_by_default():
    assert Settings().forwarded_allow_ips == ""
    proxies = TrustedProxies.parse("")
    assert proxies.client(PROXY, ["203.0.113.7"]) == PROXY


def test_an_untrusted_peer_is_the_client_whatever_it_forwards():
    proxies = TrustedProxies.parse(PROXY)
    assert proxies.client("198.51.100.9", ["203.0.113.7"]) == "198.51.100.9"
    assert proxies.client("198.51.100.9", ["10.0.0.5, 203.0.113.7"]) == "198.51.100.9"


def test_a_trusted_peer_gives_the_right_most_untrusted_hop():
    proxies = TrustedProxies.parse("10.0.0.0/8, 192.0.2.1")
    # The client forged "1.1.1.1"; our proxy appended the address it really saw.
    assert proxies.client(PROXY, ["1.1.1.1, 203.0.113.7"]) == "203.0.113.7"
    # Several trusted hops (a load balancer in front of the proxy) are skipped.
    assert proxies.client(PROXY, ["1.1.1.1, 203.0.113.7, 192.0.2.1, 10.1.2.3"]) == "203.0.113.7"
    # Several headers are one list, in order.
    assert proxies.client(PROXY, ["1.1.1.1", "203.0.113.7"]) == "203.0.113.7"
    # No header: the proxy itself.
    assert proxies.client(PROXY, []) == PROXY
    assert proxies.client(PROXY, None) == PROXY


def test_a_broken_chain_stops_at_the_last_trusted_hop():
    proxies = TrustedProxies.parse("10.0.0.0/8")
    assert proxies.client(PROXY, ["203.0.113.7, unknown"]) == PROXY
    assert proxies.client(PROXY, ["203.0.113.7, nonsense, 10.0.0.9"]) == "10.0.0.9"


def test_star_trusts_every_hop_like_uvicorn():
    proxies = TrustedProxies.parse("*")
    assert proxies.client("198.51.100.9", ["203.0.113.7, 10.0.0.1"]) == "203.0.113.7"
    assert proxies.client("198.51.100.9", []) == "198.51.100.9"


def test_address_forms_and_ipv6():
    assert str(parse_ip("203.0.113.7:4711")) == "203.0.113.7"
    assert str(parse_ip("[2001:db8::1]:443")) == "2001:db8::1"
    assert str(parse_ip("::ffff:203.0.113.7")) == "203.0.113.7"
    assert parse_ip("unknown") is None and parse_ip("_hidden") is None
    proxies = TrustedProxies.parse("2001:db8::/32")
    assert proxies.client("2001:db8::5", ["2001:db9::7"]) == "2001:db9::7"
    assert proxies.client("::ffff:10.0.0.5", ["203.0.113.7"]) == "10.0.0.5"  # v4 network not listed


def test_a_malformed_setting_fails_at_start():
    with pytest.raises(ValidationError):
        Settings(forwarded_allow_ips="10.0.0.0/8, proxy.internal")


# --- the running app: the per-IP limits see the real clients -----------------------------------------


def _client(ctx, peer: str) -> TestClient:
    return TestClient(create_app(ctx=ctx), base_url="http://testserver", client=(peer, 40000))


def _code(client: TestClient, phone: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/api/v1/auth/sms-codes", json={"phone": phone}, headers=headers).status_code


class TestBehindATrustedProxy:
    @pytest.fixture
    def settings(self, settings):
        settings.forwarded_allow_ips = "10.0.0.0/24"
        settings.sms_ip_hourly_limit = 2
        return settings

    def test_limits_count_each_real_client(self, ctx):
        with _client(ctx, PROXY) as proxy:
            assert _code(proxy, "13800138001", "203.0.113.7") == 202
            assert _code(proxy, "13800138002", "203.0.113.7") == 202
            assert _code(proxy, "13800138003", "203.0.113.7") == 429  # that client's limit
            # other clients behind the same proxy are not limited with it
            assert _code(proxy, "13800138003", "203.0.113.8") == 202
            # a forged left-most hop does not give the limited client a new address
            assert _code(proxy, "13800138004", "9.9.9.9, 203.0.113.7") == 429

    def test_the_session_records_the_real_client(self, ctx):
        from conftest import latest_code

        with _client(ctx, PROXY) as proxy:
            hdr = {"X-Forwarded-For": "203.0.113.7"}
            assert _code(proxy, "13800138000", "203.0.113.7") == 202
            version = proxy.get("/api/v1/privacy/policy").json()["version"]
            body = {
                "phone": "13800138000",
                "code": latest_code(proxy, "13800138000"),
                "accept_policy_version": version,
                "age": {"adult": True},
            }
            r = proxy.post("/api/v1/auth/sessions", json=body, headers=hdr)
            if r.status_code == 422 and "age" in r.text:  # before the age gate exists
                del body["age"]
                r = proxy.post("/api/v1/auth/sessions", json=body, headers=hdr)
            assert r.status_code == 201, r.text
        with ctx.db.session() as s:
            assert [row.login_ip for row in s.query(AuthSession)] == ["203.0.113.7"]


class TestAnUntrustedPeer:
    @pytest.fixture
    def settings(self, settings):
        settings.forwarded_allow_ips = "10.0.0.0/24"
        settings.sms_ip_hourly_limit = 2
        return settings

    def test_a_forged_forwarded_for_is_ignored(self, ctx):
        with _client(ctx, "198.51.100.9") as attacker:
            assert _code(attacker, "13800138001", "203.0.113.1") == 202
            assert _code(attacker, "13800138002", "203.0.113.2") == 202
            # a new forged address each time still counts against the attacker's own address
            assert _code(attacker, "13800138003", "203.0.113.3") == 429


class TestNoProxyConfigured:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_ip_hourly_limit = 2
        return settings

    def test_forwarded_for_is_ignored_by_default(self, ctx):
        with _client(ctx, PROXY) as proxy:
            assert _code(proxy, "13800138001", "203.0.113.1") == 202
            assert _code(proxy, "13800138002", "203.0.113.2") == 202
            assert _code(proxy, "13800138003", "203.0.113.3") == 429
