"""Settings, all read from `HRK_*` environment variables (see README's settings table)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from huirongke.kit.client_address import TrustedProxies
from huirongke.kit.storage import private_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HRK_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = "dev"
    #: The API description (/api/openapi.json) and its viewer (/api/docs): on in dev and test, off in
    #: prod unless HRK_API_DOCS=1 (kit/apidocs.py; nothing is loaded from a CDN either way).
    api_docs: bool | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    storage_url: str | None = None
    log_level: str = "INFO"
    #: Where `serve` also writes its (redacted) JSON log; default <data_dir>/logs/huirongke.log.
    log_file: Path | None = None
    #: How long rotated log files are kept before the retention job deletes them. R10 (网络安全法 21)
    #: and the policy promise security logs for at least six months: 184 days covers the longest
    #: six calendar months.
    log_retention_days: int = Field(default=184, ge=184)

    # Sign-in
    sms_provider: Literal["console", "aliyun"] = "console"
    sms_code_ttl_seconds: int = 300
    sms_resend_seconds: int = 60
    sms_daily_limit: int = 10
    sms_ip_hourly_limit: int = 30
    signin_ip_hourly_limit: int = 120
    sms_max_attempts: int = 5
    # Abuse budgets (docs/abuse.md). `sms_resend_seconds` and `sms_daily_limit` are per (number,
    # address) pair; the number's own ceiling is `sms_phone_daily_limit`, which a device that signed in
    # to the account before does not meet, nor challenges.
    sms_phone_daily_limit: int = 30
    #: A proof-of-work challenge after this many codes today from one (number, address) pair ...
    sms_challenge_after: int = 3
    #: ... or for the number from all addresses together.
    sms_phone_challenge_after: int = 5
    sms_challenge_bits: int = Field(default=16, ge=1, le=32)
    sms_challenge_max_bits: int = Field(default=20, ge=1, le=32)
    #: Wrong codes for one number an hour, across addresses, before only known devices may try.
    sms_phone_failures_hourly: int = 20
    #: Wrong passwords an hour per (account, address) pair.
    password_account_hourly_limit: int = 10
    #: Wrong passwords an hour per address, whatever the account.
    password_ip_hourly_limit: int = 30
    #: Wrong passwords a day per account across addresses, before only known devices may try.
    password_account_daily_limit: int = 100
    #: Trusted proxies, as uvicorn's --forwarded-allow-ips: IPs/CIDRs separated by commas, or "*".
    #: X-Forwarded-For is read only from these peers (kit/client_address.py). None by default.
    forwarded_allow_ips: str = ""
    session_ttl_days: int = 30
    #: A session unused this long is over (401 `token_expired`): 14 days, so a salesperson who opens
    #: the app every working week stays signed in, and a lost or shared phone does not stay open for
    #: the whole `session_ttl_days`. Use is tracked at most once an hour (accounts/identity.py).
    session_idle_minutes: int = Field(default=14 * 24 * 60, ge=10)
    #: Threads that run request work (database, crypto); a few per core is enough, more only contend.
    request_threads: int = Field(default=4, ge=1, le=200)
    #: How long a token's identity and the `/me` body are reused without the database. Commits drop
    #: the entries at once (across processes through Redis); this only bounds what no relay reaches.
    identity_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: str = ""
    aliyun_sms_sign_name: str = "汇容客"
    aliyun_sms_template_login: str = ""
    aliyun_sms_template_verify: str = ""
    aliyun_sms_template_guardian: str = ""

    # Media
    avatar_max_bytes: int = 5 * 1024 * 1024
    avatar_max_pixels: int = 40_000_000
    avatar_size: int = 512
    #: Worker processes that decode and re-encode uploads (kit/workers.py): half the cores, at least 1.
    media_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1, le=32)
    #: The address-space cap of each media worker (RLIMIT_AS), in MiB: a bigger job fails alone.
    media_worker_memory_mb: int = Field(default=1024, ge=256)
    #: Uploads that may wait for a worker; past workers + queue an upload gets 503 `media_busy`.
    media_queue: int = Field(default=4, ge=0)
    #: Per user: uploads a minute (429 `upload_rate_limited`) and stored bytes (413 `upload_quota_exceeded`).
    upload_rate_per_minute: int = Field(default=10, ge=1)
    upload_quota_mb: int = Field(default=200, ge=1)
    #: Media no profile or content references are deleted this long after upload (`media.orphans`).
    media_orphan_grace_hours: int = Field(default=24, ge=1)

    # Request limits (kit/limits.py, kit/httpserver.py): 413 `payload_too_large`, 408 `request_timeout`
    json_body_max_bytes: int = Field(default=64 * 1024, ge=1024)
    body_timeout_seconds: float = Field(default=60, gt=0)
    header_max_bytes: int = Field(default=16 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10, gt=0)
    keep_alive_seconds: int = Field(default=5, ge=1)
    max_connections: int = Field(default=1000, ge=1)

    # Operator-configurable facts the published policy states (P43)
    company_name: str = "厦门惠榕软件科技有限公司"
    company_address: str = "福建省厦门市"
    hotline: str = "400-0000-690"
    contact_email: str = "privacy@huirongke.cn"
    jurisdiction_city: str = "厦门市"

    cancellation_cooling_off_days: int = Field(default=7, ge=0)
    export_ttl_hours: int = Field(default=24, ge=1)
    export_interval_hours: int = Field(default=24, ge=0)
    audit_retention_days: int = Field(default=400, ge=183)  # R10: at least 6 months
    backup_retention_days: int = Field(default=30, ge=1)  # `backup prune` deletes older backups
    #: P14: a storage/provider region outside mainland China is refused unless this names a declared,
    #: consent-gated cross-border purpose.
    cross_border_purpose: str | None = None
    workday_calendar_file: Path | None = None  # extra years for kit/workdays.py, over the shipped data

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        TrustedProxies.parse(value)  # a typo fails at start, not on the first request
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'huirongke.db').resolve()}"

    @property
    def media_dir(self) -> Path:
        if self.storage_url and self.storage_url.startswith("file://"):
            return Path(self.storage_url.removeprefix("file://"))
        return self.data_dir / "media"

    @property
    def api_docs_enabled(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.env != "prod"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_log_file(self) -> Path:
        return self.log_file or self.data_dir / "logs" / "huirongke.log"

    def ensure_dirs(self) -> None:
        os.umask(0o077)  # every entry point starts here: files 0600, folders 0700 from now on
        private_dir(self.data_dir)  # 0700: only the service's user reads what it holds
        private_dir(self.media_dir)


@lru_cache
def get_settings() -> Settings:
    return Settings()
