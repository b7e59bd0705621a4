"""guardians only for minors, and a real age gate (issue 8, parts 1 and 2)

`users.age_declaration`: what the user declared at sign-up, `adult` (18 or older) or `birth_month`
(then sealed in `users.birth_month_enc`, "YYYY-MM" under the user's data key). NULL for accounts made
before the gate.
`users.birthday_source`: where `users.birthday_enc` came from, `declared` (typed by the user) or
`id_number` (a real-name submission, which no profile edit can change). Existing birthdays were typed.

Columns are added in place: a batch copy would recreate `users`, and on SQLite with foreign keys on,
dropping it deletes every row that references it (ON DELETE CASCADE).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_users = sa.table(
    "users", sa.column("birthday_enc", sa.LargeBinary()), sa.column("birthday_source", sa.String())
)


def upgrade() -> None:
    op.add_column("users", sa.Column("age_declaration", sa.String(length=16), nullable=True))
    op.add_column("users", sa.Column("birth_month_enc", sa.LargeBinary(), nullable=True))
    op.add_column("users", sa.Column("birthday_source", sa.String(length=16), nullable=True))
    op.execute(_users.update().where(_users.c.birthday_enc.is_not(None)).values(birthday_source="declared"))


def downgrade() -> None:
    for name in ("birthday_source", "birth_month_enc", "age_declaration"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f'ALTER TABLE "users" DROP COLUMN "{name}"')
        else:
            op.drop_column("users", name)
