"""Stores of personal data that are not tables (issue 7 part 6): the log files are declared with
their period, and the retention job deletes rotated log files once that period has passed."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from huirongke.config import Settings
from huirongke.kit.clock import clock, utcnow
from huirongke.privacy import retention, stores


def test_log_files_are_declared_with_the_configured_period(settings):
    settings.log_retention_days = 200
    (logs,) = stores.declared(settings)
    assert logs == stores.DataStore(
        key="log_files",
        category="system.logs",
        label="服务日志",
        purposes=("security", "basic_operation"),
        retention="P200D",
    )


def test_log_retention_keeps_the_policys_six_months():
    # R10 and the policy: security logs are kept at least six months (184 days is the longest six).
    assert Settings().log_retention_days == 184
    with pytest.raises(ValidationError):
        Settings(log_retention_days=183)


def _rotated(settings, name: str, age: timedelta):
    path = settings.resolved_log_file.with_name(f"huirongke.log.{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"event": "request"}\n')
    stamp = (utcnow() - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_retention_deletes_rotated_log_files_after_their_period(ctx):
    settings = ctx.settings
    period = timedelta(days=settings.log_retention_days)
    live = settings.resolved_log_file
    live.parent.mkdir(parents=True, exist_ok=True)
    live.write_text('{"event": "request"}\n')
    old = _rotated(settings, "2026-01-01", period + timedelta(minutes=1))
    young = _rotated(settings, "2026-01-02", period - timedelta(minutes=1))
    bystander = live.with_name("notes.txt")
    bystander.write_text("not a log file")
    os.utime(bystander, (0, 0))

    results = retention.apply(ctx)

    assert not old.exists()
    assert young.exists() and live.exists() and bystander.exists()
    logs = [(r.table, r.action, r.rows) for r in results if r.table == "log_files"]
    assert logs == [("log_files", "delete", 1)]
    clock.advance(timedelta(minutes=2))
    try:
        retention.apply(ctx)
    finally:
        clock.reset()
    assert not young.exists()
    assert live.exists()
