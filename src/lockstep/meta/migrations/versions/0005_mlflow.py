"""What MLflow's API keeps beyond lockstep's records: lifecycle stages, experiment and
registered-model tags, dataset inputs, logged models and the artifact proxy's files.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "mlflow_experiments",
        sa.Column(
            "experiment_id",
            sa.Integer,
            sa.ForeignKey("experiments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
        sa.Column("last_update_time", sa.Double, nullable=False),
        sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_table(
        "mlflow_runs",
        sa.Column(
            "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
        sa.Column("deleted_at", sa.Double),
    )
    op.create_table(
        "mlflow_run_inputs",
        sa.Column(
            "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(500), primary_key=True),
        sa.Column("digest", sa.String(128), primary_key=True),
        sa.Column("context", sa.String(255), primary_key=True),
        sa.Column("doc_json", sa.Text, nullable=False),
    )
    op.create_table(
        "mlflow_files",
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Index("ix_mlflow_files_digest", "digest"),
    )
    op.create_table(
        "logged_models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("experiment_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("source_run_id", sa.String(26)),
        sa.Column("creation_time", sa.Double, nullable=False),
        sa.Column("doc_json", sa.Text, nullable=False),
        sa.Index("ix_logged_models_experiment", "experiment_id", "creation_time"),
    )
    op.create_table(
        "mlflow_registered_models",
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("last_updated", sa.Double, nullable=False),
    )
    op.create_table(
        "mlflow_model_versions",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("logged_model_id", sa.String(64)),
        sa.Column("stage", sa.String(32), nullable=False, server_default="None"),
        sa.Column("last_updated", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "mlflow_model_versions",
        "mlflow_registered_models",
        "logged_models",
        "mlflow_files",
        "mlflow_run_inputs",
        "mlflow_runs",
        "mlflow_experiments",
    ):
        op.drop_table(table)
