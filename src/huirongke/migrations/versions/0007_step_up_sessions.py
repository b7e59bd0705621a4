"""sessions remember when their holder last proved the account's phone (step-up verification)

`verified_at`: the last step-up verification (an SMS code to the account's own phone) on this session;
NULL when there was none. A session created by an SMS code counts as verified at its creation
(`accounts/stepup.py`), so sign-in does not write it. The idle timeout reads the existing
`last_seen_at`, which needs no change.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import huirongke.kit.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verified_at", huirongke.kit.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("verified_at")
