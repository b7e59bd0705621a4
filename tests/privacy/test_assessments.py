"""Impact assessments (R11, PIPL 55-56): one record for each sensitive processing (ID numbers,
minors' data, location), written at migration, listed by the CLI, and kept at least three years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from privacy_support import run_cli
from sqlalchemy import create_engine, func, select, text

from huirongke.kit.clock import clock, utcnow
from huirongke.migrate import upgrade
from huirongke.privacy import assessments, registry, retention
from huirongke.privacy.assessments import ImpactAssessment

PROCESSINGS = ["id_number", "location", "minors"]


def _count(ctx) -> int:
    with ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(ImpactAssessment)) or 0)


def test_a_migrated_database_holds_an_assessment_of_each_sensitive_processing(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT processing, assessor FROM impact_assessments ORDER BY processing"
            rows = conn.execute(text(sql))
            assert [tuple(r) for r in rows] == [(p, "个人信息保护负责人") for p in PROCESSINGS]
    finally:
        engine.dispose()


def test_seed_writes_only_the_missing_ones(ctx):
    with ctx.db.session() as s:
        assert [a.processing for a in assessments.seed(s)] == ["id_number", "minors", "location"]
    with ctx.db.session() as s:
        s.execute(ImpactAssessment.__table__.delete().where(ImpactAssessment.processing == "minors"))
    with ctx.db.session() as s:
        assert [a.processing for a in assessments.seed(s)] == ["minors"]
        assert assessments.seed(s) == []
    assert _count(ctx) == 3


def test_the_cli_lists_every_assessment_with_its_keep_date(ctx, settings, monkeypatch):
    empty = run_cli(monkeypatch, settings, "privacy", "assessments")
    assert empty.exit_code == 1
    assert "尚无影响评估记录" in empty.output
    seeded = run_cli(monkeypatch, settings, "privacy", "assessments", "seed")
    assert seeded.exit_code == 0, seeded.output
    assert seeded.output.strip() == "已写入 3 条影响评估"
    result = run_cli(monkeypatch, settings, "privacy", "assessments")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("个人信息保护影响评估：共 3 条，每条自评估之日起至少保存 3 年\n")
    today = utcnow().date()
    keep = assessments.years_after(utcnow(), 3).date()
    for a in assessments.INITIAL:
        assert f"[{a.processing}] {a.title}\n" in out
        assert a.conclusion in out
        for line in a.measures.splitlines():
            assert f"    {line}\n" in out
    assert out.count(f"评估日期：{today.isoformat()}") == 3
    assert out.count(f"保存至：{keep.isoformat()}") == 3
    assert out.count(f"复评日期：{(utcnow() + timedelta(days=365)).date().isoformat()}") == 3


def test_assessments_are_operator_text_not_personal_data():
    table = registry.by_name("impact_assessments")
    assert [c.name for c in table.columns if c.cls.personal] == []
    assert table not in registry.personal_tables()


def test_they_are_kept_three_calendar_years():
    leap = datetime(2028, 2, 29, 9, 30, tzinfo=UTC)
    assert ImpactAssessment(assessed_at=leap).keep_until == datetime(2031, 3, 1, 9, 30, tzinfo=UTC)
    plain = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    assert ImpactAssessment(assessed_at=plain).keep_until == datetime(2029, 12, 2, 13, 0, tzinfo=UTC)


def test_the_retention_job_keeps_them_past_three_years(ctx):
    with ctx.db.session() as s:
        keep_until = max(a.keep_until for a in assessments.seed(s))
    clock.advance(keep_until - utcnow() + timedelta(days=1))
    retention.apply(ctx)
    assert _count(ctx) == 3  # PIPL 56: at least three years; nothing in the product deletes them
