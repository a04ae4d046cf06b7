"""hidden posts (moderation)

Revision ID: bf54a66bf055
Revises: a4bd2ff8f4f2
Create Date: 2026-12-06 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "bf54a66bf055"
down_revision: str | Sequence[str] | None = "a4bd2ff8f4f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("posts_post", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hidden_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("hidden_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("posts_post", schema=None) as batch_op:
        batch_op.drop_column("hidden_by")
        batch_op.drop_column("hidden_at")
