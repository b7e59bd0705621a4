"""SMS pumping, targeted lockout and password guessing (issue 8 part 4, docs/abuse.md).

The attacks of the issue must fail: "nine anonymous requests lock a victim out of SMS sign-in for a
day" and "ten wrong passwords lock out the right one". Each test plays the attacker from its own
addresses and the owner from another, through the public API.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import REDIS_URL, _redis_available, auth, latest_code, missing_service, sign_up
from huirongke.accounts.models import SmsCode
from huirongke.kit import challenge
from huirongke.kit.clock import clock
from huirongke.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from huirongke.kit.sms.aliyun import AliyunSmsProvider

PHONE = "13800138000"
DEVICE = "owner-phone-7f3a"


@pytest.fixture
def settings(settings):
    # Cheap challenges keep the tests quick; the budgets are the defaults unless a test says otherwise.
    settings.sms_challenge_bits = 4
    settings.sms_challenge_max_bits = 6
    return settings


def at(client: Any, ip: str) -> TestClient:
    """The same running app, reached from another address."""
    return TestClient(client.app, base_url="http://testserver", client=(ip, 40000))


def ask(c: TestClient, phone: str = PHONE, *, solve: bool = True, **body: Any) -> Any:
    r = c.post("/api/v1/auth/sms-codes", json={"phone": phone, **body})
    if solve and r.status_code == 429 and r.json()["error"]["code"] == "challenge_required":
        task = r.json()["error"]["details"]["challenge"]
        answer = {"id": task["id"], "solution": challenge.solve(task)}
        r = c.post("/api/v1/auth/sms-codes", json={"phone": phone, "challenge": answer, **body})
    return r


def sign_in(c: TestClient, code: str, phone: str = PHONE, **body: Any) -> Any:
    return c.post("/api/v1/auth/sessions", json={"phone": phone, "code": code, **body})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def error_code(r: Any) -> str:
    return str(r.json()["error"]["code"])


def owner_with_device(client: Any) -> str:
    """The owner signs up once on their phone (which records the device), then waits out the day."""
    token, _ = sign_up(client, PHONE, device_id=DEVICE)
    clock.advance(timedelta(days=1, seconds=1))
    return token


# --- the SMS lockout of the issue ----------------------------------------------------------------


def test_an_attackers_requests_never_use_up_the_owners_codes(client):
    """Before: nine anonymous requests for a number locked its owner out of SMS sign-in for a day."""
    sign_up(client, PHONE)
    clock.advance(timedelta(days=1, seconds=1))
    attacker = at(client, "198.51.100.66")
    statuses = []
    for _ in range(11):
        statuses.append(ask(attacker).status_code)
        clock.advance(timedelta(seconds=61))
    # the attacker's own (number, address) budget: ten a day, then 429
    assert statuses == [202] * 10 + [429], statuses
    owner = at(client, "203.0.113.10")
    r = ask(owner)
    assert r.status_code == 202, r.text
    assert sign_in(owner, latest_code(client, PHONE)).status_code == 201


def test_a_challenge_comes_after_three_codes_from_one_address(client):
    c = at(client, "198.51.100.66")
    for _ in range(3):
        assert ask(c, solve=False).status_code == 202
        clock.advance(timedelta(seconds=61))
    r = ask(c, solve=False)
    assert r.status_code == 429 and error_code(r) == "challenge_required", r.text
    assert r.headers["Retry-After"]
    task = r.json()["error"]["details"]["challenge"]
    assert task["algorithm"] == "sha256-leading-zero-bits" and task["bits"] >= 4
    assert PHONE not in r.text and "138****" not in r.text
    # a wrong answer is refused, with a new challenge
    bad = next(
        {"id": task["id"], "solution": str(n)}
        for n in range(1000)
        if challenge.leading_zero_bits(hashlib.sha256(f"{task['id']}:{n}".encode()).digest()) < task["bits"]
    )
    r = c.post("/api/v1/auth/sms-codes", json={"phone": PHONE, "challenge": bad})
    assert r.status_code == 429 and error_code(r) == "challenge_required"
    assert r.json()["error"]["details"]["challenge"]["id"] != task["id"]
    # the right answer is taken once
    answer = {"id": task["id"], "solution": challenge.solve(task)}
    r = c.post("/api/v1/auth/sms-codes", json={"phone": PHONE, "challenge": answer})
    assert r.status_code == 202, r.text
    clock.advance(timedelta(seconds=61))
    r = c.post("/api/v1/auth/sms-codes", json={"phone": PHONE, "challenge": answer})
    assert error_code(r) == "challenge_required"


def test_an_answer_is_bound_to_its_number_and_address_and_expires(ctx):
    scope = "sms:bidx:iphash"
    task = challenge.issue(ctx.ring, scope, 4, ttl=300, now=1_000_000)
    answer = challenge.Answer(task["id"], challenge.solve(task))
    assert not challenge.verify(ctx.ring, ctx.limiter, "sms:other:iphash", answer, 4, now=1_000_001)
    assert not challenge.verify(ctx.ring, ctx.limiter, scope, answer, 5, now=1_000_001)  # too little work
    assert not challenge.verify(ctx.ring, ctx.limiter, scope, answer, 4, now=1_000_301)  # expired
    forged = challenge.Answer(task["id"].replace(".4.", ".0.", 1), "0")
    assert not challenge.verify(ctx.ring, ctx.limiter, scope, forged, 0, now=1_000_001)
    assert challenge.verify(ctx.ring, ctx.limiter, scope, answer, 4, now=1_000_001)
    assert not challenge.verify(ctx.ring, ctx.limiter, scope, answer, 4, now=1_000_002)  # once


class TestTheNumbersCeiling:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_phone_daily_limit = 6
        return settings

    def test_only_a_known_device_passes_the_numbers_ceiling(self, client):
        owner_with_device(client)
        for i in range(6):  # attackers from six addresses use up the number's day
            assert ask(at(client, f"198.51.100.{i}")).status_code == 202
        assert error_code(ask(at(client, "198.51.100.99"))) == "rate_limited"
        owner = at(client, "203.0.113.10")
        # a new device, or a made-up device id, meets the ceiling too
        assert error_code(ask(owner)) == "rate_limited"
        assert error_code(ask(owner, device={"device_id": "guessed-id"})) == "rate_limited"
        # the owner's phone, which signed in before, is never locked out (and is never challenged)
        r = ask(owner, solve=False, device={"device_id": DEVICE})
        assert r.status_code == 202, r.text
        r = sign_in(owner, latest_code(client, PHONE), device={"device_id": DEVICE})
        assert r.status_code == 201, r.text


def test_another_requesters_code_does_not_void_the_owners(client):
    owner, attacker = at(client, "203.0.113.10"), at(client, "198.51.100.66")
    sign_up(owner, PHONE)
    clock.advance(timedelta(seconds=61))
    assert ask(owner).status_code == 202
    code = latest_code(client, PHONE)
    assert ask(attacker).status_code == 202
    attackers = latest_code(client, PHONE)
    # the attacker guesses five times: their own code is void and their tries end; the owner's lives on
    guess = next(g for g in (wrong(code), wrong(wrong(code))) if g != attackers)
    for left in [4, 3, 2, 1, 0]:
        r = sign_in(attacker, guess)
        assert error_code(r) == "invalid_code"
        assert r.json()["error"]["details"]["attempts_left"] == left
    if code != attackers:
        assert error_code(sign_in(attacker, code)) == "invalid_code"  # no more tries from there
    assert sign_in(owner, code).status_code == 201


class TestWrongCodesAcrossAddresses:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_phone_failures_hourly = 6
        return settings

    def test_many_addresses_guessing_stop_but_the_owners_device_signs_in(self, client):
        owner_with_device(client)
        owner = at(client, "203.0.113.10")
        assert ask(owner).status_code == 202
        code = latest_code(client, PHONE)
        guess = wrong(code)
        for i in range(3):  # six wrong codes from three addresses
            for _ in range(2):
                assert error_code(sign_in(at(client, f"198.51.100.{i}"), guess)) == "invalid_code"
        r = sign_in(at(client, "198.51.100.50"), guess)
        assert r.status_code == 429 and error_code(r) == "rate_limited", r.text
        # a new device must wait even with the right code; the owner's phone signs in
        assert error_code(sign_in(at(client, "203.0.113.11"), code)) == "rate_limited"
        r = sign_in(owner, code, device={"device_id": DEVICE})
        assert r.status_code == 201, r.text


# --- passwords ------------------------------------------------------------------------------------


def _with_password(client: Any, phone: str = PHONE, **device: Any) -> str:
    token, _ = sign_up(client, phone, **device)
    r = client.put("/api/v1/me/password", json={"password": "secret123"}, headers=auth(token))
    assert r.status_code == 204, r.text
    return token


def password(c: TestClient, pw: str, phone: str = PHONE, **body: Any) -> Any:
    return c.post("/api/v1/auth/sessions", json={"phone": phone, "password": pw, **body})


def test_ten_wrong_passwords_never_lock_out_the_right_one(client):
    """Before: ten wrong passwords from anywhere locked the account's password for everyone."""
    _with_password(client)
    attacker = at(client, "198.51.100.66")
    for i in range(10):
        assert error_code(password(attacker, f"guess{i}x")) == "invalid_credentials"
    assert error_code(password(attacker, "guess-more1")) == "rate_limited"
    assert password(at(client, "203.0.113.10"), "secret123").status_code == 201
    # and an SMS code signs in, from the attacker's address too
    assert ask(attacker).status_code == 202
    assert sign_in(attacker, latest_code(client, PHONE)).status_code == 201


def test_a_right_password_never_counts(client):
    _with_password(client)
    c = at(client, "203.0.113.10")
    for _ in range(12):
        assert password(c, "secret123").status_code == 201
    for i in range(10):
        assert error_code(password(c, f"guess{i}x")) == "invalid_credentials"


class TestPasswordsPerAddress:
    @pytest.fixture
    def settings(self, settings):
        settings.password_ip_hourly_limit = 3
        return settings

    def test_one_address_guessing_many_accounts_is_stopped(self, client):
        phones = ["13800138001", "13800138002", "13800138003", "13800138004"]
        for phone in phones:
            _with_password(client, phone)
        attacker = at(client, "198.51.100.66")
        for phone in phones[:3]:
            assert error_code(password(attacker, "123456ab", phone)) == "invalid_credentials"
        assert error_code(password(attacker, "123456ab", phones[3])) == "rate_limited"
        # an unknown number is counted the same way: no account is revealed by the limit
        assert error_code(password(attacker, "123456ab", "13900139000")) == "rate_limited"
        assert password(at(client, "203.0.113.10"), "secret123", phones[3]).status_code == 201


class TestPasswordsAcrossAddresses:
    @pytest.fixture
    def settings(self, settings):
        settings.password_account_daily_limit = 4
        return settings

    def test_guessing_from_many_addresses_stops_but_not_for_the_owner(self, client):
        _with_password(client, PHONE, device_id=DEVICE)
        for i in range(4):
            assert error_code(password(at(client, f"198.51.100.{i}"), "guess123x")) == "invalid_credentials"
        assert error_code(password(at(client, "198.51.100.9"), "guess123x")) == "rate_limited"
        newcomer = at(client, "203.0.113.11")
        assert error_code(password(newcomer, "secret123")) == "rate_limited"
        owner = at(client, "203.0.113.10")
        r = password(owner, "secret123", device={"device_id": DEVICE})
        assert r.status_code == 201, r.text
        assert ask(newcomer).status_code == 202  # and the SMS code is there for a new device
        assert sign_in(newcomer, latest_code(client, PHONE)).status_code == 201


# --- a failed send is not a use ---------------------------------------------------------------------


def _failing_provider() -> AliyunSmsProvider:
    """The real Aliyun adapter, pointed at a port where nothing listens: every send fails."""
    return AliyunSmsProvider(
        access_key_id="test",
        access_key_secret="test",
        sign_name="汇容客",
        template_codes={"login_code": "SMS_0001", "verify_code": "SMS_0002", "guardian_code": "SMS_0003"},
        endpoint="http://127.0.0.1:9/",
        timeout=2.0,
    )


class TestFailedSends:
    @pytest.fixture
    def settings(self, settings):
        settings.sms_ip_hourly_limit = 2
        settings.sms_daily_limit = 2
        return settings

    def test_a_failed_send_uses_no_budget_and_voids_no_code(self, client, ctx):
        c = at(client, "203.0.113.10")
        assert ask(c).status_code == 202
        code = latest_code(client, PHONE)
        console = ctx.sms
        ctx.sms = _failing_provider()
        try:
            clock.advance(timedelta(seconds=61))
            for _ in range(4):  # more than the address's and the pair's budgets
                r = ask(c)
                assert r.status_code == 503 and error_code(r) == "sms_unavailable", r.text
        finally:
            ctx.sms = console
        with ctx.db.session() as s:
            assert s.scalar(select(func.count()).select_from(SmsCode)) == 1
        # the code sent before still works: the failed ones did not replace it
        version = client.get("/api/v1/privacy/policy").json()["version"]
        r = sign_in(c, code, accept_policy_version=version, age={"adult": True})
        assert r.status_code == 201, r.text
        # and the budgets are whole: one more code from this address (its second of two)
        assert ask(c).status_code == 202
        clock.advance(timedelta(seconds=61))
        assert error_code(ask(c)) == "rate_limited"


# --- the limiter, on both stores --------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def limiter(request) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    if not _redis_available(REDIS_URL):
        missing_service("Redis is not reachable at " + REDIS_URL)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("hrk:rl:test-abuse:*"):
        client.delete(key)
    return RedisRateLimiter(client)


def test_limiter_hit_blocked_refund(limiter):
    key = "test-abuse:k"
    assert limiter.blocked(key, 2, 60) == 0
    assert limiter.hit(key, 2, 60) == 0
    assert limiter.hit(key, 2, 60) == 0
    assert 1 <= limiter.blocked(key, 2, 60) <= 60
    assert limiter.hit(key, 2, 60) > 0
    limiter.refund(key)
    limiter.refund(key)
    assert limiter.blocked(key, 2, 60) == 0
    assert limiter.hit(key, 2, 60) == 0
    limiter.refund("test-abuse:never-hit")  # nothing to give back: no error, no key made
    assert limiter.blocked("test-abuse:never-hit", 1, 60) == 0


def test_limit_keys_hold_no_phone_number(client, ctx):
    attacker = at(client, "198.51.100.66")
    for _ in range(4):
        ask(attacker)
        clock.advance(timedelta(seconds=61))
    assert ask(attacker).status_code == 202
    sign_in(attacker, "000000")
    password(attacker, "guess123x")
    if ctx.redis is not None:
        keys = [k.decode() for k in ctx.redis.scan_iter("hrk:*")]
    else:
        assert isinstance(ctx.limiter, MemoryRateLimiter)
        keys = list(ctx.limiter._windows)
    assert any(k.startswith(("pw:", "hrk:rl:pw:")) for k in keys), keys
    for key in keys:
        for form in (PHONE, "8613800138000", "198.51.100.66"):
            assert form not in key, key
