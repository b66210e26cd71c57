"""Create the research tables (research_runs, strategy_parameter_sets, shadow_comparisons).

Revision ID: research_0001
Revises: 0001
Create Date: 2026-01-03 00:00:00

A branch off the initial revision; Store.migrate upgrades to every head. Column types are
spelled out so the revision never changes when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "research_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the three research tables and their indexes."""
    op.create_table(
        "research_runs",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('walk_forward', 'optimize', 'montecarlo', 'daily')",
            name=op.f("ck_research_runs_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_research_runs_status")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_research_runs")),
    )
    op.create_index("ix_research_runs_kind_started_at", "research_runs", ["kind", "started_at"])
    op.create_table(
        "strategy_parameter_sets",
        sa.Column("parameter_set_id", sa.String(128), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_run_id", sa.String(128), nullable=True),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("shadow_started_at", TIMESTAMP, nullable=True),
        sa.Column("shadow_until", TIMESTAMP, nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'shadow', 'promoted', 'rejected', 'retired')",
            name=op.f("ck_strategy_parameter_sets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"],
            ["research_runs.run_id"],
            name=op.f("fk_strategy_parameter_sets_source_run_id_research_runs"),
        ),
        sa.PrimaryKeyConstraint("parameter_set_id", name=op.f("pk_strategy_parameter_sets")),
    )
    op.create_index(
        "ix_strategy_parameter_sets_strategy_symbol_status",
        "strategy_parameter_sets",
        ["strategy", "symbol", "status"],
    )
    op.create_table(
        "shadow_comparisons",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("parameter_set_id", sa.String(128), nullable=False),
        sa.Column("production_parameters", sa.JSON(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=False),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("candidate_metrics", sa.JSON(), nullable=False),
        sa.Column("production_metrics", sa.JSON(), nullable=False),
        sa.Column("score_difference", sa.Float(), nullable=False),
        sa.Column("candidate_better", sa.Boolean(), nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["parameter_set_id"],
            ["strategy_parameter_sets.parameter_set_id"],
            name=op.f("fk_shadow_comparisons_parameter_set_id_strategy_parameter_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_comparisons")),
    )
    op.create_index(
        "ix_shadow_comparisons_parameter_set_id", "shadow_comparisons", ["parameter_set_id"]
    )


def downgrade() -> None:
    """Drop the research tables."""
    op.drop_index("ix_shadow_comparisons_parameter_set_id", table_name="shadow_comparisons")
    op.drop_table("shadow_comparisons")
    op.drop_index(
        "ix_strategy_parameter_sets_strategy_symbol_status", table_name="strategy_parameter_sets"
    )
    op.drop_table("strategy_parameter_sets")
    op.drop_index("ix_research_runs_kind_started_at", table_name="research_runs")
    op.drop_table("research_runs")
