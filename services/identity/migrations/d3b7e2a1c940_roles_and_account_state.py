"""organisation roles and account state (active, deactivated, erased)

Revision ID: d3b7e2a1c940
Revises: b121a434dc2b
Create Date: 2026-12-02 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "d3b7e2a1c940"
down_revision: str | Sequence[str] | None = "b121a434dc2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "role", sqlmodel.sql.sqltypes.AutoString(), server_default="member", nullable=False
            )
        )
        batch_op.add_column(sa.Column("active", sa.Boolean(), server_default="1", nullable=False))
        batch_op.add_column(
            sa.Column("deactivated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("erased_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.execute("UPDATE identity_user SET role = 'admin' WHERE is_admin")
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.drop_column("is_admin")


def downgrade() -> None:
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute("UPDATE identity_user SET is_admin = (role = 'admin')")
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.drop_column("role")
        batch_op.drop_column("active")
        batch_op.drop_column("deactivated_at")
        batch_op.drop_column("erased_at")
