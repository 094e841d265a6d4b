"""The façade every entry point uses: find or create the store and open it from settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lockstep.errors import StoreError, StoreNotFound
from lockstep.objects.store import LocalObjectStore
from lockstep.settings import STORE_DIRNAME, Settings

if TYPE_CHECKING:  # SQLAlchemy loads only when a store is opened
    from lockstep.data.versions import DataWorkspace
    from lockstep.data.worktree import Snapshots
    from lockstep.meta.datasets import DatasetRecords
    from lockstep.meta.lineage import LineageQueries
    from lockstep.meta.models import ModelRecords
    from lockstep.meta.store import MetaStore

_GITIGNORE = "# Lockstep's store: never part of the project's code.\n*\n"


def find_store_dir(settings: Settings) -> Path | None:
    """LOCKSTEP_HOME, else the nearest ``.lockstep/`` from the working directory upwards."""
    if settings.home is not None:
        return settings.home
    for directory in (settings.cwd, *settings.cwd.parents):
        candidate = directory / STORE_DIRNAME
        if candidate.is_dir():
            return candidate
    return None


def default_store_dir(settings: Settings) -> Path:
    """Where a new store goes: LOCKSTEP_HOME, else beside the enclosing git root, else here."""
    if settings.home is not None:
        return settings.home
    for directory in (settings.cwd, *settings.cwd.parents):
        if (directory / ".git").exists():
            return directory / STORE_DIRNAME
    return settings.cwd / STORE_DIRNAME


def default_database(store_dir: Path) -> Path:
    """The SQLite file inside the store that holds the metadata unless a URL is set."""
    return store_dir / "lockstep.db"


def metadata_url(settings: Settings, store_dir: Path) -> str:
    """Where the metadata lives: the configured URL, else SQLite inside the store."""
    return settings.db_url or f"sqlite:///{default_database(store_dir)}"


def init_store_dir(path: Path) -> bool:
    """Create the store directory with its .gitignore; False when it already existed."""
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    gitignore = path / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(_GITIGNORE, encoding="utf-8")
    return not existed


def locate(settings: Settings, *, create: bool) -> tuple[Path, Path]:
    """The store directory and the project root, without opening anything (no SQL)."""
    store_dir = find_store_dir(settings)
    if store_dir is None or not store_dir.is_dir():
        if not create:
            raise StoreNotFound(str(store_dir or settings.cwd / STORE_DIRNAME))
        store_dir = store_dir or default_store_dir(settings)
        init_store_dir(store_dir)
    project_root = settings.cwd if settings.home is not None else store_dir.parent
    return store_dir, project_root


_SQLITE_HEADER = b"SQLite format 3\x00"
_CHECKED: set[Path] = set()


def check_database_file(path: Path, store_dir: Path) -> None:
    """Refuse a SQLite file that exists but holds no database (zero bytes, truncated,
    garbage): opening it would silently start an empty store, after which `gc` would
    delete every object."""
    # Once per process, before any SQLite connection: closing a descriptor of the file
    # would drop every POSIX lock this process's connections hold on it, and another
    # process could then delete the WAL under them ("disk I/O error").
    if path in _CHECKED:
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _CHECKED.add(path)  # a new store; SQLite creates it next
        return
    with open(path, "rb") as handle:
        header = handle.read(len(_SQLITE_HEADER))
    objects = store_dir / "objects"
    if header == _SQLITE_HEADER or (
        size == 0 and not (objects.is_dir() and any(p.is_file() for p in objects.rglob("*")))
    ):
        # A database, or one being created (SQLite makes the file first) with nothing to lose.
        _CHECKED.add(path)
        return
    held = size == 0 or (objects.is_dir() and any(p.is_file() for p in objects.rglob("*")))
    what = "is empty (0 bytes)" if size == 0 else f"is not a SQLite database ({size} bytes)"
    raise StoreError(
        f"{path} {what}; lockstep will not start an empty store over it"
        + (
            f" (the objects under {objects} are intact): restore lockstep.db from a backup "
            "or pull the runs and datasets again from a remote"
            if held
            else ": restore it from a backup, or delete it if this store never held anything"
        )
    )


def _missing_driver(exc: Exception) -> Exception | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name and "psycopg" in exc.name:
        return StoreError(
            "the metadata store is PostgreSQL but its driver is not installed; "
            "pip install 'lockstep[postgres]'"
        )
    return None


def _database_error(exc: Exception, settings: Settings, store_dir: Path) -> Exception:
    """Lockstep's own error for a metadata database that cannot be opened."""
    from lockstep.errors import LockstepError

    if isinstance(exc, LockstepError):
        return exc
    driver = _missing_driver(exc)
    if driver is not None:
        return driver
    url = metadata_url(settings, store_dir)
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    problem = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    if url.startswith("sqlite"):
        hint = "check the file's permissions and the disk; restore it from a backup if damaged"
    else:
        hint = "check that the server runs and LOCKSTEP_DB_URL (or [meta] url) is right"
    return StoreError(f"cannot open the metadata store {shown}: {problem}; {hint}")


def worktree_snapshots(store_dir: Path) -> Snapshots:
    """The datasets' working-copy snapshots: a local cache, like the stat cache."""
    from lockstep.data.worktree import Snapshots

    return Snapshots(store_dir / "cache" / "worktree")


@dataclass
class Workspace:
    """One opened store: its directory, its settings and its metadata."""

    store_dir: Path
    settings: Settings
    meta: MetaStore
    # The object store when it is not store_dir/objects (a server's --objects, S3).
    object_store: LocalObjectStore | None = None

    @property
    def project_root(self) -> Path:
        """The directory that holds the store (the project), or the cwd for a LOCKSTEP_HOME."""
        if self.settings.home is not None:
            return self.settings.cwd
        return self.store_dir.parent

    @classmethod
    def open(cls, settings: Settings, *, create: bool = True) -> Workspace:
        """Open the store the settings point at; with create, make it on first use."""
        if settings.tracking_uri and find_store_dir(settings) is None:
            # Only a server's URL: the metadata is there; a local store (objects, caches)
            # is made where one would be, when something needs to be written to it.
            store_dir = default_store_dir(settings)
        else:
            store_dir, _ = locate(settings, create=create)
            settings = settings.with_config(store_dir)
        if settings.tracking_uri:
            from lockstep.remote.meta import HttpMetaStore

            # The metadata lives on the server; objects and caches stay in the local store.
            uri = settings.tracking_uri
            settings = settings.with_login()
            served: Any = HttpMetaStore.open(
                uri,
                settings.token,
                spool=store_dir / "spool",
                spool_warn_bytes=int(settings.config.get("server", {}).get("spool_warn_mb", 1024))
                << 20,
                project=settings.project or "default",
                local_objects=store_dir / "objects",
                timeout=settings.server_timeout,
            )
            return cls(store_dir=store_dir, settings=settings, meta=served)
        from lockstep.meta.store import MetaStore  # SQLAlchemy, only for a SQL store

        if not settings.db_url:
            check_database_file(default_database(store_dir), store_dir)
        try:
            meta = MetaStore.open(metadata_url(settings, store_dir), create=True)
        except Exception as exc:
            raise _database_error(exc, settings, store_dir) from exc
        return cls(store_dir=store_dir, settings=settings, meta=meta)

    def dataset_records(self) -> DatasetRecords:
        """The datasets' records: SQL here, or the server's."""
        from lockstep.meta.datasets import DatasetRecords

        return cast("DatasetRecords", self._records("datasets", DatasetRecords))

    def model_records(self) -> ModelRecords:
        from lockstep.meta.models import ModelRecords

        return cast("ModelRecords", self._records("models", ModelRecords))

    def lineage_queries(self) -> LineageQueries:
        from lockstep.meta.lineage import LineageQueries

        return cast("LineageQueries", self._records("lineage", LineageQueries))

    def _records(self, kind: str, sql: type) -> object:
        if self.local_sql:
            return sql(self.meta.engine)
        from lockstep.remote.records import ServerRecords

        # The same methods, each one request to the server (typed as the SQL class).
        return ServerRecords(self.meta, kind)

    @property
    def local_sql(self) -> bool:
        """Whether the metadata is in SQL here (not behind a server): datasets, models and
        lineage need it."""
        return not getattr(self.meta, "is_remote", False)

    @property
    def objects(self) -> LocalObjectStore:
        """The local object store; a server's client fetches what it lacks from there."""
        server = getattr(self.meta, "objects", None)
        if server is not None:
            from lockstep.remote.objects import ServerBackedObjects

            return ServerBackedObjects(self.store_dir / "objects", server)
        return self.object_store or LocalObjectStore(self.store_dir / "objects")

    def data(self) -> DataWorkspace:
        """Datasets of this store (opens the local stat cache)."""
        from lockstep.data.versions import DataWorkspace
        from lockstep.objects.statcache import StatCache

        config = self.settings.config.get("data", {})
        workers = config.get("workers")
        return DataWorkspace(
            self.objects,
            self.dataset_records(),
            StatCache(self.store_dir / "cache" / "stat.db"),
            worktree_snapshots(self.store_dir),
            self.project_root,
            workers=int(workers) if workers else None,
            durable=bool(config.get("fsync", True)),
            strategies=self.link_strategies(),
        )

    def link_strategies(self) -> tuple[str, ...]:
        """How checkouts materialise files: `[data] link = [...]` in config.toml.

        Hardlinks are opt-in: they share the object's inode, and a process running
        as root can write through the read-only mode and corrupt the store.
        """
        configured = self.settings.config.get("data", {}).get("link")
        return tuple(configured) if configured else ("reflink", "copy")

    def close(self) -> None:
        self.meta.close()
