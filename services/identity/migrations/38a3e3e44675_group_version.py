"""group version for optimistic concurrency (group edits, ownership transfers)

Revision ID: 38a3e3e44675
Revises: 8c032417921b
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "38a3e3e44675"
down_revision: str | Sequence[str] | None = "06ecd53b4cc2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.drop_column("version")
