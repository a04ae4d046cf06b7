"""hidden content (moderation)

Revision ID: 96c48f831524
Revises: 2f38b7b26e2c
Create Date: 2026-12-06 18:12:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "96c48f831524"
down_revision: str | Sequence[str] | None = "2f38b7b26e2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("digests_content", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hidden", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("digests_content", schema=None) as batch_op:
        batch_op.drop_column("hidden")
