"""single sign-on hand-off codes (the web app trades one, once, for tokens)

Revision ID: aa0007d71f7e
Revises: 38a3e3e44675
Create Date: 2026-12-06 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "aa0007d71f7e"
down_revision: str | Sequence[str] | None = "38a3e3e44675"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_sso_handoff",
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("method", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"]),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    with op.batch_alter_table("identity_sso_handoff", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_sso_handoff_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_sso_handoff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_sso_handoff_user_id"))
    op.drop_table("identity_sso_handoff")
