"""The application context: the shared services one process holds, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from huirongke.accounts.identity import IdentityCache
from huirongke.config import Settings
from huirongke.devtools.outbox import DevSmsOutbox
from huirongke.kit.clock import utcnow
from huirongke.kit.crypto import KeyRing
from huirongke.kit.db import Database
from huirongke.kit.jobs import JobQueue
from huirongke.kit.phone import normalize
from huirongke.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from huirongke.kit.sms.base import SmsMessage, SmsProvider
from huirongke.kit.sms.console import ConsoleSmsProvider
from huirongke.kit.storage import LocalStorage, MediaStorage
from huirongke.kit.workers import WorkerPool
from huirongke.privacy import audit, changes
from huirongke.privacy.keys import SubjectKeys
from huirongke.privacy.policy import PolicyService
from huirongke.privacy.providers import check_data_location


@dataclass
class AppContext:
    settings: Settings
    db: Database
    keys: SubjectKeys
    storage: MediaStorage
    limiter: RateLimiter
    policy: PolicyService
    sms: SmsProvider = field(init=False)
    jobs: JobQueue = field(init=False)
    redis: Any = None
    identities: IdentityCache = field(init=False)
    #: Processes for decoding and re-encoding media, outside any request thread or database lock.
    workers: WorkerPool = field(init=False)

    @property
    def ring(self) -> KeyRing:
        return self.keys.ring

    def phone_bidx(self, e164: str) -> str:
        return self.ring.blind_index("phone", e164)

    def dev_outbox_row(self, session: Session, message: SmsMessage) -> None:
        session.add(
            DevSmsOutbox(
                phone_bidx=self.phone_bidx(normalize(message.phone)), text=message.text, sent_at=utcnow()
            )
        )


def _sms_provider(ctx: AppContext) -> SmsProvider:
    s = ctx.settings
    if s.sms_provider == "aliyun":
        from huirongke.kit.sms.aliyun import AliyunSmsProvider

        return AliyunSmsProvider(
            access_key_id=s.aliyun_access_key_id,
            access_key_secret=s.aliyun_access_key_secret,
            sign_name=s.aliyun_sms_sign_name,
            template_codes={
                "login_code": s.aliyun_sms_template_login,
                "verify_code": s.aliyun_sms_template_verify,
                "guardian_code": s.aliyun_sms_template_guardian,
            },
        )
    if s.env == "prod":
        # The console provider prints codes: in production anyone reading the logs could sign in.
        raise RuntimeError("HRK_SMS_PROVIDER=console cannot run with HRK_ENV=prod; configure a real provider")
    return ConsoleSmsProvider(ctx.dev_outbox_row)


def build_context(settings: Settings, *, immediate_jobs: bool = False) -> AppContext:
    settings.ensure_dirs()
    redis_client = None
    limiter: RateLimiter = MemoryRateLimiter()
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url)
        limiter = RedisRateLimiter(redis_client)
    db = Database(settings.resolved_database_url)
    if settings.env != "prod":
        changes.guard(db.engine)  # untracked writes to watched tables are bugs: fail loudly
    ctx = AppContext(
        settings=settings,
        db=db,
        keys=SubjectKeys(KeyRing.from_file(settings.data_dir / "keys" / "master.key")),
        storage=LocalStorage(settings.media_dir),
        limiter=limiter,
        policy=PolicyService(db),
        redis=redis_client,
    )
    audit.install(db, ctx.ring, settings.data_dir / "keys")  # the chain's key and anchor, per database
    ctx.sms = _sms_provider(ctx)
    ctx.identities = IdentityCache(settings.identity_cache_seconds)
    ctx.workers = WorkerPool(
        settings.media_workers,
        settings.media_worker_memory_mb,
        settings.media_queue,
        preload=("huirongke.media.imaging",),
    )
    if redis_client is not None:
        changes.install_relay(changes.RedisRelay(redis_client, settings.resolved_database_url))
    check_data_location(settings, {"storage": ctx.storage.region, "sms": ctx.sms.region})
    ctx.jobs = JobQueue.from_settings(settings.data_dir, settings.redis_url, ctx, immediate=immediate_jobs)
    return ctx
