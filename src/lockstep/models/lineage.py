"""Lineage: from a run, a dataset or model version, or a file, up to everything that made it
or down to everything built on it.

Links come from what runs recorded (the files they read and wrote, by digest; the dataset
and model versions they used) and from content: a dataset version whose files a run
wrote is linked to that run, a file a run read that is in a version is that version.
Edges point the way data flows (producer to consumer). Missing links and cycles are
reported, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockstep.errors import DatasetNotFound, ModelNotFound, RunNotFound, UsageError

if TYPE_CHECKING:
    from lockstep.workspace import Workspace

LINEAGE_SCHEMA = 1


@dataclass
class Graph:
    root: str
    direction: str  # "upstream" or "downstream"
    depth: int | None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    truncated: bool = False  # the depth limit left links unexplored

    _keys: set[tuple[str, str, str]] = field(default_factory=set, repr=False)

    def add_edge(self, source: str, target: str, relation: str) -> None:
        key = (source, target, relation)
        if source != target and key not in self._keys:
            self._keys.add(key)
            self.edges.append({"from": source, "to": target, "relation": relation})

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": LINEAGE_SCHEMA,
            "root": self.root,
            "direction": self.direction,
            "depth": self.depth,
            "nodes": [{"id": key, **value} for key, value in self.nodes.items()],
            "edges": self.edges,
            "missing": self.missing,
            "cycles": self.cycles,
            "truncated": self.truncated,
        }


def run_node(run_id: str) -> str:
    return f"run:{run_id}"


def dataset_node(name: str, number: int) -> str:
    return f"dataset:{name}@v{number}"


def model_node(name: str, number: int) -> str:
    return f"model:{name}@v{number}"


def file_node(path: str, digest: str) -> str:
    return f"file:{path}#{digest[:16]}"


class _Walk:
    """One breadth-first walk; each level costs a few batched queries, not one per node."""

    def __init__(self, workspace: Workspace, graph: Graph) -> None:
        self.q = workspace.lineage_queries()
        self.graph = graph
        self.runs: set[str] = set()
        self.datasets: dict[int, str] = {}  # version id -> node id
        self.models: dict[int, str] = {}
        self.files: set[tuple[str, str]] = set()
        self.seen_datasets: set[int] = set()
        self.seen_models: set[int] = set()

    # bookkeeping -------------------------------------------------------------

    def _dataset_ids(self, ids: Iterable[int]) -> dict[int, str]:
        found = self.q.dataset_versions(set(ids) - set(self.datasets))
        for key, info in found.items():
            node = dataset_node(info["dataset"], info["version"])
            self.datasets[key] = node
            self.graph.nodes.setdefault(
                node,
                {
                    "kind": "dataset",
                    "ref": f"{info['dataset']}@v{info['version']}",
                    "manifest": info["manifest"],
                    "source_path": info["source_path"],
                },
            )
        return {k: self.datasets[k] for k in ids if k in self.datasets}

    def _model_ids(self, ids: Iterable[int]) -> dict[int, str]:
        found = self.q.model_versions(set(ids) - set(self.models))
        for key, info in found.items():
            node = model_node(info["model"], info["version"])
            self.models[key] = node
            self.graph.nodes.setdefault(
                node,
                {
                    "kind": "model",
                    "ref": f"{info['model']}@v{info['version']}",
                    "manifest": info["manifest"],
                    "run": info["run"],
                    "aliases": sorted(info["aliases"]),
                },
            )
        return {k: self.models[k] for k in ids if k in self.models}

    def _run(self, run_id: str) -> str:
        node = run_node(run_id)
        self.graph.nodes.setdefault(node, {"kind": "run", "run": run_id})
        return node

    def _file(self, path: str, digest: str) -> str:
        node = file_node(path, digest)
        self.graph.nodes.setdefault(node, {"kind": "file", "path": path, "digest": digest})
        return node

    # one level ---------------------------------------------------------------

    def upstream(
        self, runs: set[str], datasets: set[int], models: set[int], files: set[tuple[str, str]]
    ) -> tuple[set[str], set[int], set[int], set[tuple[str, str]]]:
        next_runs: set[str] = set()
        next_datasets: set[int] = set()
        next_models: set[int] = set()
        next_files: set[tuple[str, str]] = set()
        g = self.graph
        for key, info in self.q.model_versions(models).items():
            node = self._model_ids([key])[key]
            if info["run"]:
                g.add_edge(self._run(info["run"]), node, "registered")
                next_runs.add(info["run"])
            else:
                g.missing.append({"node": node, "reason": "registered without a run"})
        if datasets:
            producers = self.q.links(versions=datasets, models=False, role="output")
            content = self.q.version_files(datasets, models=False)
            wrote = self.q.runs_with_files({d for _, d in content}, inputs=False)
            by_digest: dict[str, set[str]] = {}
            for digest, run_id in wrote:
                by_digest.setdefault(digest, set()).add(run_id)
            found: dict[int, set[str]] = {v: set() for v in datasets}
            for run_id, version in producers:
                found[version].add(run_id)
            for version, digest in content:
                found[version] |= by_digest.get(digest, set())
            nodes = self._dataset_ids(datasets)
            for version, run_ids in found.items():
                if not run_ids:
                    g.nodes[nodes[version]]["raw"] = True
                for run_id in sorted(run_ids):
                    g.add_edge(self._run(run_id), nodes[version], "wrote")
                    next_runs.add(run_id)
        if runs:
            self._inputs_of(runs, next_runs, next_datasets, next_models, next_files)
        if files:
            paths = _paths_by_digest(files)
            written: set[str] = set()
            for digest, run_id in self.q.runs_with_files(paths, inputs=False):
                for path in paths[digest]:
                    g.add_edge(self._run(run_id), file_node(path, digest), "wrote")
                    written.add(file_node(path, digest))
                    next_runs.add(run_id)
            for path, digest in files:
                if file_node(path, digest) not in written:
                    g.nodes[file_node(path, digest)]["raw"] = True
        return next_runs, next_datasets, next_models, next_files

    def _inputs_of(
        self,
        runs: set[str],
        next_runs: set[str],
        next_datasets: set[int],
        next_models: set[int],
        next_files: set[tuple[str, str]],
    ) -> None:
        g = self.graph
        inputs = self.q.run_files(runs, inputs=True)
        linked_datasets = self.q.links(runs=runs, models=False, role="input")
        linked_models = self.q.links(runs=runs, models=True, role="input")
        covered: dict[str, set[str]] = {r: set() for r in runs}  # run -> digests explained
        dataset_nodes = self._dataset_ids({v for _, v in linked_datasets})
        model_nodes = self._model_ids({v for _, v in linked_models})
        dataset_digests = self.q.version_files(dataset_nodes, models=False)
        model_digests = self.q.version_files(model_nodes, models=True)
        files_of: dict[tuple[str, int], set[str]] = {}
        for version, digest in dataset_digests:
            files_of.setdefault(("d", version), set()).add(digest)
        for version, digest in model_digests:
            files_of.setdefault(("m", version), set()).add(digest)
        for run_id, version in linked_datasets:
            if version in dataset_nodes:
                g.add_edge(dataset_nodes[version], run_node(run_id), "read")
                covered[run_id] |= files_of.get(("d", version), set())
                next_datasets.add(version)
        for run_id, version in linked_models:
            if version in model_nodes:
                g.add_edge(model_nodes[version], run_node(run_id), "read")
                covered[run_id] |= files_of.get(("m", version), set())
                next_models.add(version)
        loose = [(r, p, d) for r, p, d in inputs if d not in covered[r]]
        digests = {d for _, _, d in loose}
        in_models: dict[str, set[int]] = {}
        for digest, version in self.q.versions_with(digests, models=True):
            in_models.setdefault(digest, set()).add(version)
        in_datasets: dict[str, set[int]] = {}
        for digest, version in self.q.versions_with(digests, models=False):
            in_datasets.setdefault(digest, set()).add(version)
        nodes_m = self._model_ids({v for vs in in_models.values() for v in vs})
        nodes_d = self._dataset_ids(self._newest(in_datasets))
        remaining = []
        for run_id, path, digest in loose:
            if digest in in_models:
                for version in in_models[digest]:
                    g.add_edge(nodes_m[version], run_node(run_id), "read")
                    next_models.add(version)
            elif digest in in_datasets:
                version = max(in_datasets[digest])  # the newest version holding the content
                g.add_edge(nodes_d[version], run_node(run_id), "read")
                next_datasets.add(version)
            else:
                remaining.append((run_id, path, digest))
        for run_id, path, digest in remaining:
            g.add_edge(self._file(path, digest), run_node(run_id), "read")
            next_files.add((path, digest))

    @staticmethod
    def _newest(found: dict[str, set[int]]) -> set[int]:
        return {max(versions) for versions in found.values()}

    def downstream(
        self, runs: set[str], datasets: set[int], models: set[int], files: set[tuple[str, str]]
    ) -> tuple[set[str], set[int], set[int], set[tuple[str, str]]]:
        next_runs: set[str] = set()
        next_datasets: set[int] = set()
        next_models: set[int] = set()
        next_files: set[tuple[str, str]] = set()
        g = self.graph
        for versions, is_model in ((datasets, False), (models, True)):
            if not versions:
                continue
            nodes = self._model_ids(versions) if is_model else self._dataset_ids(versions)
            readers = self.q.links(versions=versions, models=is_model, role="input")
            content = self.q.version_files(versions, models=is_model)
            holders: dict[str, set[int]] = {}
            for version, digest in content:
                holders.setdefault(digest, set()).add(version)
            for digest, run_id in self.q.runs_with_files(holders, inputs=True):
                readers += [(run_id, v) for v in holders[digest]]
            for run_id, version in readers:
                g.add_edge(nodes[version], self._run(run_id), "read")
                next_runs.add(run_id)
            if is_model:
                for version in versions:
                    node = nodes[version]
                    info = g.nodes[node]
                    for alias in info.get("aliases", []):
                        name = info["ref"].split("@")[0]
                        alias_id = f"alias:{name}@{alias}"
                        g.nodes.setdefault(alias_id, {"kind": "alias", "ref": f"{name}@{alias}"})
                        g.add_edge(node, alias_id, "points")
        if runs:
            registered = self.q.models_of_runs(runs)
            nodes_m = self._model_ids({v for _, v in registered})
            for run_id, version in registered:
                g.add_edge(run_node(run_id), nodes_m[version], "registered")
                next_models.add(version)
            outputs = self.q.run_files(runs, inputs=False)
            wrote = self.q.links(runs=runs, models=False, role="output")
            holders_d: dict[str, set[int]] = {}
            for digest, version in self.q.versions_with({d for _, _, d in outputs}, models=False):
                holders_d.setdefault(digest, set()).add(version)
            nodes_d = self._dataset_ids({v for _, v in wrote} | self._all(holders_d))
            for run_id, version in wrote:
                g.add_edge(run_node(run_id), nodes_d[version], "wrote")
                next_datasets.add(version)
            loose = []
            for run_id, path, digest in outputs:
                for version in holders_d.get(digest, ()):
                    g.add_edge(run_node(run_id), nodes_d[version], "wrote")
                    next_datasets.add(version)
                if digest not in holders_d:
                    loose.append((run_id, path, digest))
            readers_of: dict[str, set[str]] = {}
            for digest, reader in self.q.runs_with_files({d for _, _, d in loose}, inputs=True):
                readers_of.setdefault(digest, set()).add(reader)
            for run_id, path, digest in loose:
                others = readers_of.get(digest, set()) - {run_id}
                if others:
                    g.add_edge(run_node(run_id), self._file(path, digest), "wrote")
                    next_files.add((path, digest))
        if files:
            paths = _paths_by_digest(files)
            writers: dict[str, set[str]] = {}  # a file node -> the runs that wrote it
            for edge in g.edges:
                if edge["relation"] == "wrote":
                    writers.setdefault(edge["to"], set()).add(edge["from"])
            for digest, reader in self.q.runs_with_files(paths, inputs=True):
                for path in paths[digest]:
                    node = file_node(path, digest)
                    if run_node(reader) not in writers.get(node, set()):
                        g.add_edge(node, self._run(reader), "read")
                        next_runs.add(reader)
        return next_runs, next_datasets, next_models, next_files

    @staticmethod
    def _all(found: dict[str, set[int]]) -> set[int]:
        return {v for versions in found.values() for v in versions}

    # the walk ----------------------------------------------------------------

    def walk(
        self,
        frontier: tuple[set[str], set[int], set[int], set[tuple[str, str]]],
        *,
        downstream: bool,
        depth: int | None,
    ) -> None:
        step = self.downstream if downstream else self.upstream
        level = 0
        while any(frontier):
            if depth is not None and level >= depth:
                self.graph.truncated = True
                break
            runs, datasets, models, files = frontier
            self.runs |= runs
            self.files |= files
            self.seen_datasets |= datasets
            self.seen_models |= models
            found = step(runs, datasets, models, files)
            frontier = (
                found[0] - self.runs,
                found[1] - self.seen_datasets,
                found[2] - self.seen_models,
                found[3] - self.files,
            )
            level += 1
        self._describe_runs()

    def _describe_runs(self) -> None:
        ids = [n["run"] for n in self.graph.nodes.values() if n["kind"] == "run"]
        details = self.q.runs(ids)
        for node_id, node in self.graph.nodes.items():
            if node["kind"] != "run":
                continue
            found = details.get(node["run"])
            if found is None:
                node["missing"] = True
                self.graph.missing.append(
                    {"node": node_id, "reason": "the run is not in this store"}
                )
            else:
                node.update(found)


def _paths_by_digest(files: set[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path, digest in files:
        found.setdefault(digest, []).append(path)
    return found


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the filesystem, say: no file
        return False


def _resolve(workspace: Workspace, ref: str, *, files: bool = True) -> tuple[str, Any]:
    """(kind, what) for a lineage reference: a model or dataset version, a file (when
    files: a server never looks at its own files for a client), a run."""

    kind, sep, rest = ref.partition(":")
    forced = kind if sep and kind in {"model", "dataset", "run", "file"} else None
    target = rest if forced else ref
    if (forced in {None, "model"} and "@" in target) or forced == "model":
        try:
            return "model", workspace.model_records().resolve(target)
        except ModelNotFound:
            if forced == "model":
                raise
    if (forced in {None, "dataset"} and "@" in target) or forced == "dataset":
        try:
            return "dataset", workspace.dataset_records().resolve(target)
        except DatasetNotFound:
            if forced == "dataset":
                raise
    path = Path(target)
    if forced == "file" and not files:
        raise UsageError("a server traces versions and runs; trace a file from its machine")
    if files and (forced == "file" or (forced is None and _is_file(path))):
        if not _is_file(path):
            raise UsageError(f"{target} is not a file")
        digest = workspace.data().digest_of(path.resolve())
        try:
            shown = path.resolve().relative_to(workspace.project_root).as_posix()
        except ValueError:
            shown = str(path)
        return "file", (shown, digest)
    try:
        return "run", workspace.meta.resolve(target)
    except RunNotFound:
        raise UsageError(
            f"{ref!r} is no run, model version (NAME@vN), dataset version (NAME@vN) or file; "
            "prefix it with model:, dataset:, run: or file: to say which"
        ) from None


def lineage(
    workspace: Workspace,
    ref: str,
    *,
    downstream: bool = False,
    depth: int | None = None,
    file_refs: bool = True,
) -> Graph:
    """Everything upstream of ref (what made it) or downstream (what was built on it);
    file_refs=False refuses a file as ref (a server's own files are nobody's business)."""
    if depth is not None and depth < 1:
        raise UsageError("--depth must be at least 1")
    kind, what = _resolve(workspace, ref, files=file_refs)
    runs: set[str] = set()
    datasets: set[int] = set()
    models: set[int] = set()
    files: set[tuple[str, str]] = set()
    graph = Graph(root="", direction="downstream" if downstream else "upstream", depth=depth)
    walk = _Walk(workspace, graph)
    if kind == "model":
        graph.root = walk._model_ids([what.id])[what.id]
        models.add(what.id)
    elif kind == "dataset":
        graph.root = walk._dataset_ids([what.id])[what.id]
        datasets.add(what.id)
    elif kind == "file":
        graph.root = walk._file(*what)
        files.add(what)
    else:
        graph.root = walk._run(what)
        runs.add(what)
    walk.walk((runs, datasets, models, files), downstream=downstream, depth=depth)
    graph.cycles = cycles(graph)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected groups of more than one node (iterative Tarjan)."""
    successors: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for edge in graph.edges:
        successors.setdefault(edge["from"], []).append(edge["to"])
        successors.setdefault(edge["to"], [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in successors:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = successors[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found
