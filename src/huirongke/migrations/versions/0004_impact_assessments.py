"""impact assessments (R11)

The `impact_assessments` table, and the initial assessments of the sensitive processings (ID
numbers, minors' data, location) from `huirongke.privacy.assessments.INITIAL`, assessed at the time
the migration runs. Downgrading drops the table and its records.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import huirongke.kit.db
from huirongke.privacy.assessments import initial_rows

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "impact_assessments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("processing", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("risks", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("conclusion", sa.Text(), nullable=False),
        sa.Column("assessor", sa.String(length=100), nullable=False),
        sa.Column("assessed_at", huirongke.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("review_due", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impact_assessments")),
    )
    op.create_index(
        "ix_impact_assessments_processing_assessed_at",
        "impact_assessments",
        ["processing", "assessed_at"],
        unique=False,
    )
    op.bulk_insert(table, initial_rows(datetime.now(UTC)))


def downgrade() -> None:
    op.drop_index("ix_impact_assessments_processing_assessed_at", table_name="impact_assessments")
    op.drop_table("impact_assessments")
