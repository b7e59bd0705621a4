"""abuse limits for SMS codes and passwords (issue 8, part 4)

Placeholder in the fixed chain; the limits live in the rate-limit store (memory or Redis), so no
table is needed yet.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
