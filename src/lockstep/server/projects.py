"""Each project of a server in a store of its own: the default project is the served
store; another keeps its metadata beside it (a SQLite file under ``projects/NAME/``, or a
PostgreSQL schema ``lockstep_NAME`` in the same database, ``BASE__NAME`` when the served
URL sets a search_path BASE) and its objects under ``projects/NAME`` of the objects
directory.

Separate stores make a project's isolation structural: no query can forget a project
filter and show another project's runs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from lockstep.core import validate
from lockstep.errors import UsageError
from lockstep.meta.store import MetaStore
from lockstep.objects.store import LocalObjectStore
from lockstep.server.access import DEFAULT_PROJECT, Access

if TYPE_CHECKING:
    from lockstep.workspace import Workspace


@dataclass
class Project:
    name: str
    meta: MetaStore
    objects: LocalObjectStore
    store_dir: Path

    def workspace(self) -> Workspace:
        """The project as a workspace (what sync and the records classes work on)."""
        from lockstep.settings import Settings
        from lockstep.workspace import Workspace

        return Workspace(
            store_dir=self.store_dir,
            settings=Settings(cwd=self.store_dir),
            meta=self.meta,
            object_store=self.objects,
        )


def project_url(base_url: str, name: str) -> str:
    """The metadata URL of project name, given the default project's."""
    if name == DEFAULT_PROJECT:
        return base_url
    url = sa.engine.make_url(base_url)
    if url.get_backend_name() == "sqlite":
        assert url.database, "a server's SQLite store is a file"
        database = Path(url.database).parent / "projects" / name / "lockstep.db"
        url = url.set(database=str(database))
    else:
        url = url.update_query_dict({"options": f"-csearch_path={project_schema(base_url, name)}"})
    return url.render_as_string(hide_password=False)


def project_schema(base_url: str, name: str) -> str:
    """The PostgreSQL schema of project name."""
    options = str(sa.engine.make_url(base_url).query.get("options", ""))
    match = re.search(r"search_path\s*=\s*([A-Za-z0-9_]+)", options)
    schema = f"{match.group(1)}__{name}" if match else f"lockstep_{name}"
    if len(schema) > 63:
        raise UsageError(f"project {name!r} makes the schema name {schema} too long for PostgreSQL")
    return schema


class Projects:
    """The server's projects, each store opened on first use and kept open."""

    def __init__(
        self,
        default: MetaStore,
        base_url: str,
        store_dir: Path,
        objects_root: Path,
        s3: tuple[str, str | None] | None = None,
    ) -> None:
        self.default = default
        self.base_url = base_url
        self.store_dir = store_dir
        self.objects_root = objects_root
        # (s3://bucket/prefix, endpoint URL): objects in a bucket; objects_root caches.
        self.s3 = s3
        self.access = Access(default.engine)
        self._open: dict[str, Project] = {
            DEFAULT_PROJECT: Project(
                DEFAULT_PROJECT, default, self._objects(DEFAULT_PROJECT), store_dir
            )
        }
        self._lock = threading.Lock()

    def get(self, name: str) -> Project:
        """The project; ProjectNotFound for one that does not exist."""
        opened = self._open.get(name)
        if opened is not None:
            return opened
        validate.project(name)
        self.access.require_project(name)
        with self._lock:
            if name not in self._open:
                objects = self._objects(name)
                self._open[name] = Project(
                    name, self._open_store(name), objects, self.store_dir / "projects" / name
                )
            return self._open[name]

    def _objects(self, name: str) -> LocalObjectStore:
        root = (
            self.objects_root if name == DEFAULT_PROJECT else self.objects_root / "projects" / name
        )
        if self.s3 is None:
            return LocalObjectStore(root)
        from lockstep.server.s3objects import S3Objects

        url, endpoint = self.s3
        if name != DEFAULT_PROJECT:
            url = f"{url.rstrip('/')}/projects/{name}"
        return S3Objects(root, url, endpoint)

    def create(self, name: str) -> bool:
        """Make a project and its store; False when it exists."""
        made = self.access.create_project(name)
        self.get(name)
        return made

    def _open_store(self, name: str) -> MetaStore:
        url = project_url(self.base_url, name)
        if self.default.engine.dialect.name == "postgresql":
            with self.default.engine.begin() as connection:
                schema = project_schema(self.base_url, name)
                connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        else:
            database = sa.engine.make_url(url).database
            assert database
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return MetaStore.open(url)

    def close(self) -> None:
        for project in self._open.values():
            project.meta.close()
