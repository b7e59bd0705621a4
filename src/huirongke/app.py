"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from huirongke import (
    jobs_registry,  # noqa: F401  (the composition root registers every job)
    models,  # noqa: F401  (registers every table)
)
from huirongke.accounts.routes import router as accounts_router
from huirongke.config import Settings, get_settings
from huirongke.context import AppContext, build_context
from huirongke.kit import apidocs, workdays
from huirongke.kit.errors import COMMON_ERROR_STATUSES, AppError, error_responses, install_error_handlers
from huirongke.kit.headers import NoStoreMiddleware
from huirongke.kit.limits import BodyLimit, BodyLimitMiddleware
from huirongke.kit.logging import configure_logging
from huirongke.kit.middleware import RequestContextMiddleware
from huirongke.media.routes import router as media_router
from huirongke.privacy import changes, replay
from huirongke.privacy.case_routes import meta_router as case_meta_router
from huirongke.privacy.case_routes import router as case_router
from huirongke.privacy.guardian_routes import router as guardian_router
from huirongke.privacy.rights_routes import router as rights_router
from huirongke.privacy.routes import router as privacy_router
from huirongke.web.assets import StaticAssets
from huirongke.web.routes import STATIC_DIR
from huirongke.web.routes import router as web_router


def create_app(
    settings: Settings | None = None,
    *,
    ctx: AppContext | None = None,
    run_jobs: bool = False,
    log_to_file: bool = False,
) -> FastAPI:
    settings = settings or (ctx.settings if ctx else get_settings())
    settings.ensure_dirs()
    configure_logging(settings.log_level, file=settings.resolved_log_file if log_to_file else None)
    ctx = ctx or build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with ctx.db.session() as session:
            ctx.policy.ensure_seeded(session, settings)
        workdays.warn_missing_years(settings.workday_calendar_file)  # a year near today without data
        replay.on_startup(ctx)  # erasures a restored database does not reflect, before answering
        # Request work runs in anyio's thread pool (40 threads by default). Past a few threads per core
        # they only contend for the GIL: bounded, a burst of sign-ins queues instead of thrashing.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        consumer = ctx.jobs.start_consumer() if run_jobs else None
        relay = changes.relay() if ctx.redis is not None else None
        if relay is not None:
            relay.start()  # hear other processes' commits, so cached identities stay exact
        yield
        if relay is not None:
            relay.stop()
        if consumer is not None:
            consumer.stop(graceful=True)
        await run_in_threadpool(ctx.workers.shutdown)  # the media worker processes

    app = FastAPI(
        title="汇容客 API",
        version="1",
        docs_url=None,  # no Swagger UI from a CDN: kit/apidocs.py serves a local page instead
        redoc_url=None,
        openapi_url="/api/openapi.json" if settings.api_docs_enabled else None,
        lifespan=lifespan,
        responses=error_responses(*COMMON_ERROR_STATUSES),  # every operation's error statuses, documented
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    media_limit = settings.avatar_max_bytes
    app.add_middleware(
        BodyLimitMiddleware,  # 413 payload_too_large, 408 request_timeout (kit/limits.py)
        default=settings.json_body_max_bytes,
        routes={  # an upload's multipart framing needs room beyond the file's limit
            "/api/v1/media": BodyLimit(
                media_limit + 64 * 1024, "file_too_large", f"图片不能超过 {media_limit // (1024 * 1024)} MB"
            )
        },
        timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(NoStoreMiddleware)  # outermost: every answer it must mark passes through it
    if settings.api_docs_enabled:
        apidocs.install(app, "/api/docs")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        checks = {"database": ctx.db.ping, "jobs": ctx.jobs.ping, "storage": ctx.storage.ping}
        failed = []
        for name, check in checks.items():
            try:
                await run_in_threadpool(check)
            except Exception:
                failed.append(name)
        if failed:
            raise AppError("服务尚未就绪", code="not_ready", status=503, details={"failed": failed})
        return JSONResponse({"status": "ready"})

    app.include_router(accounts_router)
    app.include_router(privacy_router)
    app.include_router(rights_router)
    app.include_router(case_router)
    app.include_router(case_meta_router)
    app.include_router(guardian_router)
    app.include_router(media_router, responses=error_responses(413, 415))
    if settings.env == "dev":
        from huirongke.devtools.routes import router as dev_router

        app.include_router(dev_router)
    app.state.assets = StaticAssets(STATIC_DIR, watch=settings.env == "dev")  # fingerprinted, gzip
    app.mount("/static", app.state.assets, name="static")
    app.include_router(web_router)
    return app
