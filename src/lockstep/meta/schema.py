"""The tables of the metadata store, as this lockstep reads and writes them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

info = sa.Table(
    "lockstep_info",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.Double, nullable=False),
    sa.Column("end_time", sa.Double),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # The process start time tells a live pid from a recycled one.
    sa.Column("pid_start", sa.Double),
    sa.Column("heartbeat_at", sa.Double, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_start", "start_time"),
    sa.Index("ix_runs_name", "name"),
    sa.Index("ix_runs_status", "status"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("value_json", sa.Text, nullable=False),
    sa.Column("value_type", sa.String(8), nullable=False),
    # Numbers (and booleans as 0/1) for numeric comparisons and sorting.
    sa.Column("value_num", sa.Double),
    # Strings as themselves, anything else as its JSON text: string comparisons.
    sa.Column("value_text", sa.Text, nullable=False),
    sa.Index("ix_params_key_num", "key", "value_num"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_tags_key", "key"),
)

metric_chunks = sa.Table(
    "metric_chunks",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_step", sa.BigInteger, nullable=False),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    # Little-endian int64 steps, float64 values, float64 unix times.
    sa.Column("steps", sa.LargeBinary, nullable=False),
    sa.Column("vals", sa.LargeBinary, nullable=False),
    sa.Column("times", sa.LargeBinary, nullable=False),
)

metric_summaries = sa.Table(
    "metric_summaries",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(500), primary_key=True),
    # NaN is stored as NULL (count > 0 tells it from "no value"); SQLite cannot hold NaN.
    sa.Column("last", sa.Double),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    sa.Column("min", sa.Double),
    sa.Column("max", sa.Double),
    sa.Column("count", sa.BigInteger, nullable=False),
    # The same summary as exact JSON written by Python ([last, last_step, min, max, count]):
    # SQL engines print doubles with fewer digits than a double holds.
    sa.Column("summary_json", sa.Text, nullable=False),
    sa.Index("ix_metric_summaries_key_last", "key", "last"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Index("ix_artifacts_digest", "digest"),
)

# Open-ended JSON sections of a run (command, seed, code, environment, ...).
run_sections = sa.Table(
    "run_sections",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value_json", sa.Text, nullable=False),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    # The version's manifest (relative paths, sizes, modes, digests) is itself an object.
    sa.Column("manifest_digest", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("source_path", sa.Text, nullable=False),  # project-relative where possible
    sa.Column("kind", sa.String(8), nullable=False),  # "file" or "dir"
    sa.UniqueConstraint("dataset_id", "number", name="uq_dataset_versions_number"),
    sa.Index("ix_dataset_versions_manifest", "manifest_digest"),
)

dataset_files = sa.Table(
    "dataset_files",
    metadata,
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
    sa.Index("ix_dataset_files_digest", "digest"),
)

dataset_tags = sa.Table(
    "dataset_tags",
    metadata,
    sa.Column(
        "dataset_id", sa.Integer, sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(255), primary_key=True),
    sa.Column(
        "version_id",
        sa.Integer,
        sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
)

run_datasets = sa.Table(
    "run_datasets",
    metadata,
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

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    # A manifest like a dataset version's: the files by relative path, size, mode, digest.
    sa.Column("manifest_digest", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    # The run that wrote the files; not a foreign key: a removed run leaves a missing link
    # that lineage shows, never a model version that vanished with it.
    sa.Column("run_id", sa.String(26)),
    sa.Column("created_by", sa.String(255), nullable=False, server_default=""),
    # What each file holds (tensors, training state, estimator class, ...), read at register.
    sa.Column("summary_json", sa.Text, nullable=False, server_default="{}"),
    sa.UniqueConstraint("model_id", "number", name="uq_model_versions_number"),
    sa.Index("ix_model_versions_manifest", "manifest_digest"),
    sa.Index("ix_model_versions_run", "run_id"),
)

model_files = sa.Table(
    "model_files",
    metadata,
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
    sa.Index("ix_model_files_digest", "digest"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column(
        "version_id",
        sa.Integer,
        sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("number", sa.Integer, nullable=False),
)

# Every move of an alias, never rewritten; entry_key identifies a move across stores.
model_alias_history = sa.Table(
    "model_alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("from_number", sa.Integer),  # None: the alias was new
    sa.Column("to_number", sa.Integer),  # None: the alias was deleted
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("entry_key", sa.String(64), nullable=False, unique=True),
    sa.Index("ix_model_alias_history_alias", "model_id", "alias"),
)

run_models = sa.Table(
    "run_models",
    metadata,
    sa.Column("run_id", sa.String(26), primary_key=True),
    sa.Column(
        "version_id",
        sa.Integer,
        sa.ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(8), primary_key=True),  # "input"
    sa.Index("ix_run_models_version", "version_id"),
)

# What MLflow's API knows of experiments, runs and models beyond lockstep's own records
# (lifecycle stages, experiment and registered-model tags, logged models, the files stored
# through its artifact proxy). Lockstep's commands never need them.
mlflow_experiments = sa.Table(
    "mlflow_experiments",
    metadata,
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

mlflow_runs = sa.Table(
    "mlflow_runs",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Column("deleted_at", sa.Double),
)

mlflow_run_inputs = sa.Table(
    "mlflow_run_inputs",
    metadata,
    sa.Column(
        "run_id", sa.String(26), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column("digest", sa.String(128), primary_key=True),
    sa.Column("context", sa.String(255), primary_key=True),
    # The dataset and its input tags as MLflow sent them.
    sa.Column("doc_json", sa.Text, nullable=False),
)

# Files stored through the artifact proxy, by their path under it; the bytes are objects.
mlflow_files = sa.Table(
    "mlflow_files",
    metadata,
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Index("ix_mlflow_files_digest", "digest"),
)

logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("source_run_id", sa.String(26)),
    sa.Column("creation_time", sa.Double, nullable=False),
    # The model as MLflow's API shows it (status, params, tags, metrics, type).
    sa.Column("doc_json", sa.Text, nullable=False),
    sa.Index("ix_logged_models_experiment", "experiment_id", "creation_time"),
)

mlflow_registered_models = sa.Table(
    "mlflow_registered_models",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("tags_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("last_updated", sa.Double, nullable=False),
)

mlflow_model_versions = sa.Table(
    "mlflow_model_versions",
    metadata,
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

RUN_CHILD_TABLES = (
    params,
    tags,
    metric_chunks,
    metric_summaries,
    artifacts,
    run_sections,
    run_datasets,
    run_models,
    mlflow_runs,
    mlflow_run_inputs,
)

# A server's own: its projects (besides "default") and the hashes of its access tokens.
server_projects = sa.Table(
    "server_projects",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

server_tokens = sa.Table(
    "server_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("revoked_at", sa.Double),
    sa.Index("ix_server_tokens_project", "project"),
)
