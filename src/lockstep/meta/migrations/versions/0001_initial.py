"""The first schema: experiments, runs, params, tags, metric chunks and summaries, artifacts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("runs.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "lockstep_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("pid_start", sa.Double),
        sa.Column("heartbeat_at", sa.Double, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_experiment_start", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_start", "runs", ["start_time"])
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "params",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("value_json", sa.Text, nullable=False),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("value_num", sa.Double),
        sa.Column("value_text", sa.Text, nullable=False),
    )
    op.create_index("ix_params_key_num", "params", ["key", "value_num"])
    op.create_table(
        "tags",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_tags_key", "tags", ["key"])
    op.create_table(
        "metric_chunks",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("vals", sa.LargeBinary, nullable=False),
        sa.Column("times", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(500), primary_key=True),
        sa.Column("last", sa.Double),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("min", sa.Double),
        sa.Column("max", sa.Double),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("summary_json", sa.Text, nullable=False),
    )
    op.create_index("ix_metric_summaries_key_last", "metric_summaries", ["key", "last"])
    op.create_table(
        "artifacts",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_artifacts_digest", "artifacts", ["digest"])
    op.create_table(
        "run_sections",
        sa.Column("run_id", sa.String(26), _run_fk(), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "run_sections",
        "artifacts",
        "metric_summaries",
        "metric_chunks",
        "tags",
        "params",
        "runs",
        "experiments",
        "lockstep_info",
    ):
        op.drop_table(table)
