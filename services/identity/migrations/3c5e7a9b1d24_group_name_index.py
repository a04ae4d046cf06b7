"""groups listed by name from an index, not sorted per page

Revision ID: 3c5e7a9b1d24
Revises: ef4c2ab913a1
Create Date: 2026-12-07 17:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3c5e7a9b1d24"
down_revision: str | Sequence[str] | None = "ef4c2ab913a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.create_index("ix_identity_group_name_id", ["name", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("identity_group", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_group_name_id")
