"""scim provisioning: provisioning clients and SCIM links

Revision ID: 00485978ad2c
Revises: 8c032417921b
Create Date: 2026-12-06 18:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "00485978ad2c"
down_revision: str | Sequence[str] | None = "49fa0686286f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_scim_client",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["identity_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_scim_client", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_scim_client_token_hash"), ["token_hash"], unique=True
        )

    op.create_table(
        "identity_scim_link",
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("user_name", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "resource_id"),
        sa.UniqueConstraint("kind", "external_id"),
        sa.UniqueConstraint("user_name"),
    )


def downgrade() -> None:
    op.drop_table("identity_scim_link")
    with op.batch_alter_table("identity_scim_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_scim_client_token_hash"))
    op.drop_table("identity_scim_client")
