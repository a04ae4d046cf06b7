"""erasures (GDPR delete on request) and what each service reported removing

Revision ID: f4995a540b36
Revises: 8c032417921b
Create Date: 2026-12-06 17:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "f4995a540b36"
down_revision: str | Sequence[str] | None = "00485978ad2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_erasure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_erasure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_erasure_user_id"), ["user_id"], unique=True)

    op.create_table(
        "identity_erasure_report",
        sa.Column("erasure_id", sa.Uuid(), nullable=False),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("reported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["identity_erasure.id"]),
        sa.PrimaryKeyConstraint("erasure_id", "service"),
    )


def downgrade() -> None:
    op.drop_table("identity_erasure_report")
    with op.batch_alter_table("identity_erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_erasure_user_id"))
    op.drop_table("identity_erasure")
