"""open groups' slugs are unique; private groups' slugs reveal nothing

Revision ID: 5e1f0c2a9b7d
Revises: 7a385ac01e4d
Create Date: 2026-12-02 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0c2a9b7d"
down_revision: str | Sequence[str] | None = "7a385ac01e4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("visibility = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_group_slug")
        batch_op.create_index("ix_identity_group_slug", ["slug"], unique=False)
        batch_op.create_index(
            "uq_identity_group_open_slug",
            ["slug"],
            unique=True,
            sqlite_where=OPEN,
            postgresql_where=OPEN,
        )


def downgrade() -> None:
    # Fails if two groups now share a slug: that is the data this revision allows.
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.drop_index("uq_identity_group_open_slug")
        batch_op.drop_index("ix_identity_group_slug")
        batch_op.create_index("ix_identity_group_slug", ["slug"], unique=True)
