"""Lineage graphs as a terminal tree, Graphviz dot or a Mermaid flowchart."""

from __future__ import annotations

from typing import Any

from lockstep.cli import render
from lockstep.models.lineage import Graph

# How an edge reads from the node the tree is at, walking up or down.
_UP = {"registered": "registered by", "wrote": "written by", "read": "read"}
_DOWN = {"registered": "registered", "wrote": "wrote", "read": "read by", "points": "named by"}


def label(node: dict[str, Any]) -> str:
    """One line naming a node and what identifies it."""
    kind = node["kind"]
    if kind == "run":
        if node.get("missing"):
            return f"run {node['run']}  MISSING: not in this store"
        parts = [f"run {node.get('name', '?')} ({node['run'][:12]})", str(node.get("status", ""))]
        if node.get("commit"):
            parts.append(f"commit {node['commit'][:10]}" + ("+diff" if node.get("dirty") else ""))
        if node.get("seed") is not None:
            parts.append(f"seed {node['seed']}")
        if node.get("environment"):
            parts.append(f"env {node['environment'][:10]}")
        verdicts = node.get("verdicts") or []
        parts.append(f"verified {verdicts[-1]}" if verdicts else "never verified")
        return "  ".join(parts)
    if kind == "model":
        aliases = f" [{', '.join(node['aliases'])}]" if node.get("aliases") else ""
        return f"model {node['ref']}{aliases}  manifest {node['manifest'][:12]}"
    if kind == "dataset":
        raw = "  raw data: no recorded run wrote it" if node.get("raw") else ""
        return f"dataset {node['ref']}  ({node.get('source_path', '')}){raw}"
    if kind == "alias":
        return f"alias {node['ref']}"
    raw = "  no recorded run wrote it, in no dataset" if node.get("raw") else ""
    return f"file {node['path']}  blake3 {node['digest'][:12]}{raw}"


def tree(graph: Graph) -> None:
    from rich.tree import Tree

    upstream = graph.direction == "upstream"
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in graph.edges:
        parent, child = (edge["to"], edge["from"]) if upstream else (edge["from"], edge["to"])
        children.setdefault(parent, []).append((child, edge["relation"]))
    words = _UP if upstream else _DOWN
    root = Tree(label(graph.nodes[graph.root]), guide_style="dim")
    shown: set[str] = {graph.root}
    stack = [(root, graph.root)]
    while stack:
        branch, node = stack.pop()
        for child, relation in sorted(children.get(node, [])):
            text = f"{words.get(relation, relation)} {label(graph.nodes[child])}"
            if child in shown:
                branch.add(text + "  (shown above)", style="dim")
                continue
            shown.add(child)
            stack.append((branch.add(text), child))
    out = render.console()
    out.print(root, markup=False, highlight=False)
    if not graph.edges:
        out.print("no recorded links" + (" upstream" if upstream else " downstream"))
    for item in graph.missing:
        out.print(f"missing link: {item['node']}: {item['reason']}", markup=False)
    for group in graph.cycles:
        out.print(f"cycle: {' -> '.join(group)}", markup=False)
    if graph.truncated:
        out.print(f"(stopped at depth {graph.depth}; more links lie beyond)")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(graph: Graph) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    shapes = {"run": "box", "dataset": "cylinder", "model": "component", "alias": "note"}
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for node, info in graph.nodes.items():
        shape = shapes.get(info["kind"], "ellipse")
        style = ", style=dashed, color=red" if info.get("missing") else ""
        lines.append(f'  {ids[node]} [label="{_quoted(label(info))}", shape={shape}{style}];')
    for edge in graph.edges:
        lines.append(f'  {ids[edge["from"]]} -> {ids[edge["to"]]} [label="{edge["relation"]}"];')
    lines.append("}")
    return "\n".join(lines)


def mermaid(graph: Graph) -> str:
    ids = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node, info in graph.nodes.items():
        text = label(info).replace('"', "#quot;")
        lines.append(f'  {ids[node]}["{text}"]')
    for edge in graph.edges:
        lines.append(f"  {ids[edge['from']]} -->|{edge['relation']}| {ids[edge['to']]}")
    return "\n".join(lines)
