"""The `huirongke` command line: serve, worker, migrate, demo and staff actions."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from huirongke.config import get_settings

app = typer.Typer(help="汇容客 server and operator commands.", no_args_is_help=True)
privacy_app = typer.Typer(help="Privacy operations: policy versions.", no_args_is_help=True)
realname_app = typer.Typer(help="Real-name review (staff).", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")
app.add_typer(realname_app, name="realname")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from huirongke.migrate import upgrade

    settings = get_settings()
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url)
    typer.echo("数据库已是最新结构")


@app.command()
def serve(
    host: str = typer.Option(None, help="defaults to HRK_HOST"),
    port: int = typer.Option(None, help="defaults to HRK_PORT"),
    jobs: bool = typer.Option(True, help="run the job consumer in this process"),
) -> None:
    """Migrate, then serve the API, the web client and (by default) the jobs."""
    import uvicorn

    from huirongke.app import create_app
    from huirongke.migrate import upgrade

    started = time.monotonic()
    settings = get_settings()
    settings.ensure_dirs()
    upgrade(settings.resolved_database_url)
    application = create_app(settings, run_jobs=jobs)
    host, port = host or settings.host, port or settings.port
    typer.echo(f"汇容客 正在启动：http://{host}:{port}  (迁移用时 {time.monotonic() - started:.1f}s)")
    uvicorn.run(application, host=host, port=port, access_log=False, log_config=None, proxy_headers=False)


@app.command()
def worker() -> None:
    """Run the job consumer alone (scale-out: API processes then run without jobs)."""
    from huirongke.context import build_context
    from huirongke.kit.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    ctx = build_context(settings)
    consumer = ctx.jobs.huey.create_consumer(workers=2, worker_type="thread")
    consumer.run()


@app.command()
def demo(count: int = typer.Option(8, min=1, max=200)) -> None:
    """Seed realistic demo users (zh_CN) so the product can be tried at once."""
    from huirongke.demo import seed

    settings = get_settings()
    settings.ensure_dirs()
    from huirongke.migrate import upgrade

    upgrade(settings.resolved_database_url)
    for line in seed(settings, count):
        typer.echo(line)


@privacy_app.command("publish-policy")
def publish_policy(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    changes: str = typer.Option(..., "--changes", help="what changed, shown to users before they agree"),
) -> None:
    """Publish a new policy version; every user must agree again before using the service."""
    from huirongke.context import build_context

    ctx = build_context(get_settings())
    with ctx.db.session() as session:
        ctx.policy.ensure_seeded(session, ctx.settings)
        row = ctx.policy.publish(session, file.read_text(encoding="utf-8"), changes)
        version = row.version
    typer.echo(f"已发布隐私政策第 {version} 版")


def _review(user_id: str, approve: bool, note: str | None) -> None:
    from huirongke.accounts.profile import review_real_name
    from huirongke.context import build_context
    from huirongke.kit.errors import AppError

    ctx = build_context(get_settings())
    try:
        with ctx.db.session() as session:
            review_real_name(session, user_id, approve, note)
    except AppError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo("已通过实名认证" if approve else "已驳回实名认证")


@realname_app.command("verify")
def realname_verify(user_id: str) -> None:
    """Approve a pending real-name submission; it is locked from then on."""
    _review(user_id, True, None)


@realname_app.command("reject")
def realname_reject(user_id: str, reason: str = typer.Option(..., "--reason")) -> None:
    """Reject a pending real-name submission with a reason the user sees."""
    _review(user_id, False, reason)


if __name__ == "__main__":
    app()
