"""user version for optimistic concurrency

Revision ID: 8a1f34c59ba1
Revises: c059134b679e
Create Date: 2026-12-02 04:22:03.188655
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8a1f34c59ba1"
down_revision: str | Sequence[str] | None = "c059134b679e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.drop_column("version")
