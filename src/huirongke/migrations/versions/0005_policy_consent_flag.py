"""policy versions say whether they ask everyone to agree again, and what they were rendered from

`requires_consent`: a version that changes what users agreed to (a new controller, another court, a
hand-written text) requires a new agreement; one that only updates contact facts does not
(`privacy/policy.py`). Every existing version did require it.
`facts`: the setting-derived values a version generated from the project's template was rendered
with (NULL for a text published by hand), so a start with other settings can publish the same text
with the new values.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("requires_consent", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("facts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.drop_column("facts")
        batch_op.drop_column("requires_consent")
