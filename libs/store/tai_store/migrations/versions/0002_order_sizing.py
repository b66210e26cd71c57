"""Orders record how risk decided: requested quantity optional, sized_by, rejected_by, reduce_only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 00:00:00

Strategies send intents that risk sizes (no requested quantity), exits are reduce-only, and
every approval names the constraint that set its quantity. Batch mode keeps SQLite working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("requested_quantity", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("sized_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("rejected_by", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("reduce_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reduce_only")
        batch.drop_column("rejected_by")
        batch.drop_column("sized_by")
        batch.alter_column("requested_quantity", existing_type=sa.Float(), nullable=False)
