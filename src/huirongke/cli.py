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
    from huirongke.kit.httpserver import uvicorn_options
    from huirongke.kit.storage import tighten_tree
    from huirongke.migrate import upgrade

    started = time.monotonic()
    settings = get_settings()
    settings.ensure_dirs()
    tighten_tree(settings.data_dir)  # files an older version left 0644 become 0600 (issue 8)
    upgrade(settings.resolved_database_url)
    application = create_app(settings, run_jobs=jobs, log_to_file=True)
    host, port = host or settings.host, port or settings.port
    typer.echo(f"汇容客 正在启动：http://{host}:{port}  (迁移用时 {time.monotonic() - started:.1f}s)")
    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,  # no `Server: uvicorn` banner (issue 8)
        **uvicorn_options(settings),  # header size and time, keep-alive, connections (kit/httpserver.py)
    )


@app.command()
def worker() -> None:
    """Run the job consumer alone (scale-out: API processes then run without jobs)."""
    import huirongke.jobs_registry  # noqa: F401  (a composition root: the consumer knows every job)
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


@privacy_app.command("publish-template")
def publish_template(
    changes: str = typer.Option(..., "--changes", help="what changed, shown to users before they agree"),
) -> None:
    """Publish the project's own policy template with the current settings (e.g. after an upgrade
    changed its wording); every user must agree again. Later changes of the operator's facts are
    then republished at start-up."""
    from huirongke.context import build_context

    ctx = build_context(get_settings())
    with ctx.db.session() as session:
        ctx.policy.ensure_seeded(session, ctx.settings)
        version = ctx.policy.publish_template(session, ctx.settings, changes).version
    typer.echo(f"已按模板发布隐私政策第 {version} 版")


@privacy_app.command("verify-audit")
def verify_audit(
    record_restore: bool = typer.Option(
        False,
        "--record-restore",
        help="first declare in the anchor that the database was restored and now ends at its current head",
    ),
    rekey_legacy: bool = typer.Option(
        False,
        "--rekey-legacy",
        help="once, after upgrading: re-key a log begun with plain SHA-256 (refused if it is broken)",
    ),
) -> None:
    """Check the audit log's keyed hash chain against its anchor outside the database; exits 1 if any
    event was altered, removed or reordered, or the tail was cut off."""
    from huirongke.context import build_context
    from huirongke.privacy import audit

    ctx = build_context(get_settings())
    if record_restore:
        with ctx.db.session() as session:
            seq = audit.mark_restored(session)
        typer.echo(f"已在链外锚点记录恢复：审计链现止于第 {seq} 条事件")
    if rekey_legacy:
        try:
            with ctx.db.session() as session:
                n = audit.rekey_legacy(session)
        except audit.LegacyChainBroken as exc:
            where = f"第 {exc.seq} 条事件，" if exc.seq is not None else ""
            typer.echo(f"审计日志被篡改，未重新签名：{where}{exc.reason}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"已用密钥重新签名 {n} 条事件")
    with ctx.db.session() as session:
        result = audit.verify(session)
    if result.ok:
        typer.echo(f"审计日志完整：已校验 {result.checked} 条事件")
        return
    where = f"第 {result.first_bad_seq} 条事件，" if result.first_bad_seq is not None else ""
    typer.echo(f"审计日志被篡改：{where}{result.reason}", err=True)
    raise typer.Exit(1)


@privacy_app.command("residue")
def residue(
    phone: str = typer.Option(None, "--phone", help="the subject's phone, in any format"),
    text: list[str] = typer.Option([], "--text", help="other strings that must not remain (repeatable)"),
) -> None:
    """Scan tables, raw database files, media, job store and logs for a subject; exit 1 on any hit."""
    from huirongke.context import build_context
    from huirongke.kit.phone import InvalidPhone
    from huirongke.privacy.residue import describe, scan

    if not phone and not text:
        typer.echo("请至少提供 --phone 或 --text", err=True)
        raise typer.Exit(2)
    ctx = build_context(get_settings())
    started = time.monotonic()
    try:
        hits = scan(ctx, phone, text)
    except InvalidPhone:
        typer.echo("手机号码格式无效", err=True)
        raise typer.Exit(2) from None
    took = time.monotonic() - started
    if hits:
        typer.echo(f"发现残留（{len(hits)} 处，用时 {took:.1f}s）：", err=True)
        for line in describe(hits, len(text) + 1):
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
    typer.echo(f"未发现残留（用时 {took:.1f}s）")


@privacy_app.command("erase-due")
def erase_due_cmd() -> None:
    """Erase every account whose cooling-off period has ended (the periodic job does this too)."""
    from huirongke.context import build_context
    from huirongke.privacy.erasure import erase_due

    ctx = build_context(get_settings())
    typer.echo(f"已执行 {erase_due(ctx)} 个注销")


@privacy_app.command("retention")
def retention_cmd() -> None:
    """Apply retention periods now (the periodic job does this hourly)."""
    from huirongke.context import build_context
    from huirongke.privacy.retention import apply

    ctx = build_context(get_settings())
    results = apply(ctx)
    for r in results:
        typer.echo(f"{r.table}.{r.column}: {r.action} {r.rows} 行")
    typer.echo(f"保存期限检查完成，处理 {len(results)} 项")


@privacy_app.command("lists")
def lists_cmd() -> None:
    """Print the two published lists as JSON, generated from the data map and configured providers."""
    import json

    from huirongke.context import build_context
    from huirongke.privacy import lists

    ctx = build_context(get_settings())
    out = {"collection": lists.collection_list(ctx.settings), "sharing": lists.sharing_list(ctx)}
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


cases_app = typer.Typer(help="Data-rights cases (staff).", no_args_is_help=True)
app.add_typer(cases_app, name="cases")


@cases_app.command("list")
def cases_list(overdue: bool = typer.Option(False, help="only cases past their deadline")) -> None:
    """Open cases, earliest deadline first."""
    from huirongke.context import build_context
    from huirongke.privacy import cases

    ctx = build_context(get_settings())
    with ctx.db.session() as s:
        rows = cases.overdue(s) if overdue else cases.staff_queue(s)
        for c in rows:
            typer.echo(f"{c.id}  {cases.KINDS[c.kind]}  截止 {c.deadline}  用户 {c.user_id}")
        if not rows:
            typer.echo("没有待处理的申请")


@cases_app.command("show")
def cases_show(
    case_id: str, staff: str = typer.Option(..., "--staff", help="your staff id (audited)")
) -> None:
    """Show a case, including the user's description (this read is audited)."""
    from huirongke.context import build_context
    from huirongke.kit.errors import AppError
    from huirongke.privacy import cases
    from huirongke.privacy.models import PrivacyCase

    ctx = build_context(get_settings())
    with ctx.db.session() as s:
        case = s.get(PrivacyCase, case_id)
        if case is None:
            typer.echo("找不到该申请", err=True)
            raise typer.Exit(1)
        try:
            text = cases.read_description(ctx, s, case, staff)
        except AppError as exc:
            typer.echo(exc.message, err=True)
            raise typer.Exit(1) from None
        typer.echo(f"{cases.KINDS[case.kind]}（{cases.STATUS_LABELS[case.status]}），截止 {case.deadline}")
        if case.ground:
            typer.echo(f"理由：{cases.DELETION_GROUNDS[case.ground]}")
        typer.echo(text)
        for e in cases.history(s, case.id):
            typer.echo(f"  {e.at:%Y-%m-%d %H:%M} {cases.STATUS_LABELS[e.status]} {e.actor} {e.note or ''}")


def _case_action(case_id: str, staff: str, resolution: str | None, reason: str | None) -> None:
    from huirongke.context import build_context
    from huirongke.kit.errors import AppError
    from huirongke.privacy import cases

    ctx = build_context(get_settings())
    try:
        with ctx.db.session() as s:
            if resolution is not None:
                cases.resolve(ctx, s, case_id, staff, resolution)
            else:
                cases.refuse(s, case_id, staff, reason or "")
    except AppError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo("已办结" if resolution is not None else "已拒绝，并已告知用户理由与诉讼权利")


@cases_app.command("resolve")
def cases_resolve(
    case_id: str,
    staff: str = typer.Option(..., "--staff"),
    resolution: str = typer.Option(..., "--resolution"),
) -> None:
    """Close a case with the outcome the user will read."""
    _case_action(case_id, staff, resolution, None)


@cases_app.command("refuse")
def cases_refuse(
    case_id: str, staff: str = typer.Option(..., "--staff"), reason: str = typer.Option(..., "--reason")
) -> None:
    """Refuse a case; the reason is shown to the user with their right to go to court (R14)."""
    _case_action(case_id, staff, None, reason)


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


backup_app = typer.Typer(help="Backups that forget erased people.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")


def _backup_failed(exc: Exception) -> typer.Exit:
    typer.echo(f"失败：{exc}", err=True)
    return typer.Exit(1)


@backup_app.command("create")
def backup_create(directory: Path = typer.Argument(..., help="a new or empty folder")) -> None:
    """Back up the database and media (never keys/), consistently while the service runs."""
    from huirongke.privacy.backup import BackupError, create

    try:
        create(get_settings(), directory, typer.echo)
    except BackupError as exc:
        raise _backup_failed(exc) from None


@backup_app.command("restore")
def backup_restore(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="the backup folder"),
    keys: Path = typer.Option(..., "--keys", exists=True, file_okay=False, help="the keys dir as it is now"),
) -> None:
    """Restore into an empty HRK_DATA_DIR (and empty database); replays every later erasure first."""
    from huirongke.privacy.backup import BackupError, restore

    try:
        restore(get_settings(), directory, keys, typer.echo)
    except BackupError as exc:
        raise _backup_failed(exc) from None


@backup_app.command("replay")
def backup_replay() -> None:
    """Finish an interrupted restore: replay the erasure ledger against the database now."""
    from huirongke.privacy.backup import BackupError, finish

    try:
        replayed, orphans = finish(get_settings(), typer.echo)
    except BackupError as exc:
        raise _backup_failed(exc) from None
    typer.echo(f"完成：重放 {replayed} 个注销，删除 {orphans} 个无主媒体文件")


@backup_app.command("prune")
def backup_prune(root: Path = typer.Argument(..., help="the folder holding one folder per backup")) -> None:
    """Delete the backups under ROOT older than HRK_BACKUP_RETENTION_DAYS (run it from cron)."""
    from huirongke.privacy.backup import BackupError, prune

    settings = get_settings()
    days = settings.backup_retention_days
    try:
        removed = prune(root, days, settings.data_dir / "keys", typer.echo)
    except BackupError as exc:
        raise _backup_failed(exc) from None
    typer.echo(f"已删除 {len(removed)} 个超过 {days} 天的备份")


assessments_app = typer.Typer(
    help="Impact assessments (R11): list them, or seed the missing ones.", invoke_without_command=True
)
privacy_app.add_typer(assessments_app, name="assessments")


@assessments_app.callback()
def assessments_list(typer_ctx: typer.Context) -> None:
    """List the impact assessments (个人信息保护影响评估) of the sensitive processings; exits 1 if none."""
    if typer_ctx.invoked_subcommand is not None:
        return
    from huirongke.context import build_context
    from huirongke.privacy import assessments

    ctx = build_context(get_settings())
    with ctx.db.session() as session:
        rows = assessments.listed(session)
        if not rows:
            typer.echo("尚无影响评估记录：运行 huirongke privacy assessments seed 写入初始评估", err=True)
            raise typer.Exit(1)
        typer.echo(f"个人信息保护影响评估：共 {len(rows)} 条，每条自评估之日起至少保存 3 年")
        for a in rows:
            typer.echo("")
            typer.echo(f"[{a.processing}] {a.title}")
            typer.echo(
                f"  评估人：{a.assessor}  评估日期：{a.assessed_at.date().isoformat()}  "
                f"复评日期：{a.review_due.isoformat()}  保存至：{a.keep_until.date().isoformat()}"
            )
            for label, text in (("处理内容", a.scope), ("风险", a.risks), ("措施", a.measures)):
                typer.echo(f"  {label}：")
                for line in text.splitlines():
                    typer.echo(f"    {line}")
            typer.echo(f"  结论：{a.conclusion}")


@assessments_app.command("seed")
def assessments_seed() -> None:
    """Write the initial assessment of each sensitive processing that has none."""
    from huirongke.context import build_context
    from huirongke.privacy import assessments

    ctx = build_context(get_settings())
    with ctx.db.session() as session:
        added = assessments.seed(session)
    typer.echo(f"已写入 {len(added)} 条影响评估" if added else "每项敏感处理都已有影响评估，未写入")


if __name__ == "__main__":
    app()
