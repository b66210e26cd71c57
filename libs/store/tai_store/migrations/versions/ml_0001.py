"""Create the model registry (ml_models).

Revision ID: ml_0001
Revises: 0001
Create Date: 2026-01-02 00:00:00

A branch off the initial revision; Store.migrate upgrades to every head. Column types are
spelled out so the revision never changes when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ml_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ml_models",
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("feature_set_version", sa.String(64), nullable=False),
        sa.Column("feature_names", sa.JSON(), nullable=False),
        sa.Column("training_start", TIMESTAMP, nullable=False),
        sa.Column("training_end", TIMESTAMP, nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("importances", sa.JSON(), nullable=False),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.Column("artifact_format", sa.String(32), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("promoted_at", TIMESTAMP, nullable=True),
        sa.Column("needs_retraining", sa.Boolean(), nullable=False),
        sa.Column("retraining_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "stage IN ('candidate', 'production', 'archived')", name=op.f("ck_ml_models_stage")
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_ml_models")),
    )
    op.create_index(
        "ix_ml_models_symbol_timeframe_stage",
        "ml_models",
        ["symbol", "timeframe", "stage"],
    )


def downgrade() -> None:
    op.drop_index("ix_ml_models_symbol_timeframe_stage", table_name="ml_models")
    op.drop_table("ml_models")
