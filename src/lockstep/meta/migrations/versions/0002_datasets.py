"""Datasets: versions as manifests, their files, tags, and the runs that used or made them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("manifest_digest", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),  # "file" or "dir"
        sa.UniqueConstraint("dataset_id", "number", name="uq_dataset_versions_number"),
    )
    op.create_index("ix_dataset_versions_manifest", "dataset_versions", ["manifest_digest"])
    op.create_table(
        "dataset_files",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer, nullable=False),
    )
    op.create_index("ix_dataset_files_digest", "dataset_files", ["digest"])
    op.create_table(
        "dataset_tags",
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(255), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_table(
        "run_datasets",
        sa.Column(
            "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(8), primary_key=True),  # "input" or "output"
    )


def downgrade() -> None:
    for table in ("run_datasets", "dataset_tags", "dataset_files", "dataset_versions", "datasets"):
        op.drop_table(table)
