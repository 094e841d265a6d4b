"""Models: named versions as manifests with format summaries, tags, aliases and their
history, and the runs that read them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("manifest_digest", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(26)),
        sa.Column("created_by", sa.String(255), nullable=False, server_default=""),
        sa.Column("summary_json", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("model_id", "number", name="uq_model_versions_number"),
    )
    op.create_index("ix_model_versions_manifest", "model_versions", ["manifest_digest"])
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_files",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
    )
    op.create_index("ix_model_files_digest", "model_files", ["digest"])
    op.create_table(
        "model_tags",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "model_aliases",
        sa.Column(
            "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("number", sa.Integer, nullable=False),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("from_number", sa.Integer),
        sa.Column("to_number", sa.Integer),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("entry_key", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_model_alias_history_alias", "model_alias_history", ["model_id", "alias"])
    op.create_table(
        "run_models",
        sa.Column("run_id", sa.String(26), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(8), primary_key=True),
    )
    op.create_index("ix_run_models_version", "run_models", ["version_id"])


def downgrade() -> None:
    for table in (
        "run_models",
        "model_alias_history",
        "model_aliases",
        "model_tags",
        "model_files",
        "model_versions",
        "models",
    ):
        op.drop_table(table)
