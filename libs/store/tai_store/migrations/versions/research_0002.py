"""Model challenges (research_model_challenges) and the ``retrain`` research run kind.

Revision ID: research_0002
Revises: research_0001
Create Date: 2026-02-01 00:00:00

Column types are spelled out so the revision never changes when the models do. SQLite
rebuilds research_runs (batch mode) to change its CHECK constraint.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "research_0002"
down_revision: str | None = "research_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
OLD_KINDS = "kind IN ('walk_forward', 'optimize', 'montecarlo', 'daily')"
NEW_KINDS = "kind IN ('walk_forward', 'optimize', 'montecarlo', 'daily', 'retrain')"


def upgrade() -> None:
    """Allow ``retrain`` runs; create the model challenges table."""
    with op.batch_alter_table("research_runs") as batch:
        batch.drop_constraint(op.f("ck_research_runs_kind"), type_="check")
        batch.create_check_constraint("kind", NEW_KINDS)
    op.create_table(
        "research_model_challenges",
        sa.Column("challenge_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("champion_model_id", sa.String(128), nullable=True),
        sa.Column("challenger_model_id", sa.String(128), nullable=True),
        sa.Column("run_id", sa.String(128), nullable=True),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("shadow_started_at", TIMESTAMP, nullable=True),
        sa.Column("shadow_until", TIMESTAMP, nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "status IN ('shadow', 'promoted', 'rejected')",
            name=op.f("ck_research_model_challenges_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["research_runs.run_id"],
            name=op.f("fk_research_model_challenges_run_id_research_runs"),
        ),
        sa.PrimaryKeyConstraint("challenge_id", name=op.f("pk_research_model_challenges")),
    )
    op.create_index(
        "ix_research_model_challenges_symbol_status",
        "research_model_challenges",
        ["symbol", "timeframe", "status"],
    )


def downgrade() -> None:
    """Drop the model challenges; refuse ``retrain`` runs again."""
    op.drop_index(
        "ix_research_model_challenges_symbol_status", table_name="research_model_challenges"
    )
    op.drop_table("research_model_challenges")
    op.execute("DELETE FROM research_runs WHERE kind = 'retrain'")
    with op.batch_alter_table("research_runs") as batch:
        batch.drop_constraint(op.f("ck_research_runs_kind"), type_="check")
        batch.create_check_constraint("kind", OLD_KINDS)
