// Lineage: the graph upstream (what made it) or downstream (what was built on it) of a
// run, dataset version or model version, laid out by dagre and drawn as SVG; every node
// is a link to its page, reachable by keyboard.
import dagre from "@dagrejs/dagre";
import { useMemo, useState } from "preact/hooks";
import { projectApi, query, request } from "../api";
import { shortId } from "../format";
import { setParams, useRoute } from "../route";
import { ErrorLine, Loading, useLoad } from "../ui";

interface Node {
  id: string;
  kind: string;
  ref?: string;
  run?: string;
  name?: string;
  path?: string;
  status?: string;
  verdicts?: string[];
  raw?: boolean;
}

interface Graph {
  root: string;
  direction: string;
  nodes: Node[];
  edges: { from: string; to: string; relation: string }[];
  missing: string[];
  cycles: string[][];
  truncated: boolean;
}

const WIDTH = 190;
const HEIGHT = 46;

function label(node: Node): string {
  if (node.kind === "run") return node.name ?? shortId(node.run ?? node.id);
  if (node.kind === "file") return node.path ?? node.id;
  return node.ref ?? node.id;
}

function href(project: string, node: Node): string | null {
  const p = `/p/${encodeURIComponent(project)}`;
  if (node.kind === "run" && node.run) return `${p}/runs/${node.run}`;
  if ((node.kind === "dataset" || node.kind === "model") && node.ref) {
    const [name, version] = node.ref.split("@v");
    return node.kind === "dataset" ? `${p}/datasets/${encodeURIComponent(name)}?v=${version}` : `${p}/models/${encodeURIComponent(name)}`;
  }
  return null;
}

export function LineagePage({ project }: { project: string }) {
  const { params } = useRoute();
  const ref = params.get("ref") ?? "";
  const downstream = params.get("down") === "1";
  const [text, setText] = useState(ref);
  const api = projectApi(project);
  const graph = useLoad(
    () => (ref ? request<Graph>(`${api}/lineage${query({ ref, downstream })}`) : Promise.resolve(null)),
    [api, ref, downstream],
  );
  return (
    <section class="page" aria-labelledby="lineage-title">
      <header class="page-head">
        <h1 id="lineage-title">Lineage</h1>
      </header>
      <form
        class="filter"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ ref: text.trim() }, { replace: false });
        }}
      >
        <input
          type="search"
          aria-label="Run, dataset or model reference"
          placeholder="a run, name@v2, model:name@champion"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Trace</button>
        <label>
          <input type="checkbox" checked={downstream} onChange={() => setParams({ down: downstream ? null : 1 })} />{" "}
          downstream
        </label>
      </form>
      {graph.loading && ref ? <Loading label="Tracing lineage" /> : null}
      <ErrorLine error={graph.error} />
      {graph.data ? <GraphView project={project} graph={graph.data} /> : null}
    </section>
  );
}

function GraphView({ project, graph }: { project: string; graph: Graph }) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 60, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const node of graph.nodes) g.setNode(node.id, { width: WIDTH, height: HEIGHT });
    for (const edge of graph.edges) g.setEdge(edge.from, edge.to);
    dagre.layout(g);
    return g;
  }, [graph]);
  const size = layout.graph();
  const width = Math.max(200, (size.width ?? 0) + 20);
  const height = Math.max(80, (size.height ?? 0) + 20);
  return (
    <>
      <p class="muted">
        {graph.nodes.length} nodes, {graph.edges.length} links {graph.direction}
        {graph.truncated ? "; cut at the depth asked" : ""}
        {graph.missing.length ? `; missing: ${graph.missing.join(", ")}` : ""}
        {graph.cycles.length ? `; ${graph.cycles.length} cycle(s)` : ""}
      </p>
      <div class="scroll-x">
        <svg
          class="lineage"
          role="img"
          aria-label={`Lineage graph of ${graph.root}: ${graph.nodes.length} nodes`}
          viewBox={`0 0 ${width} ${height}`}
          width={width}
          height={height}
        >
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
              <path d="M0,0 L10,5 L0,10 z" class="arrow" />
            </marker>
          </defs>
          {layout.edges().map((e) => {
            const points = layout.edge(e).points ?? [];
            return (
              <polyline
                class="edge"
                points={points.map((p) => `${p.x},${p.y}`).join(" ")}
                marker-end="url(#arrow)"
              />
            );
          })}
          {graph.nodes.map((node) => {
            const at = layout.node(node.id);
            if (!at) return null;
            const link = href(project, node);
            const body = (
              <g transform={`translate(${at.x - WIDTH / 2},${at.y - HEIGHT / 2})`} class={`node node-${node.kind}${node.id === graph.root ? " root" : ""}`}>
                <rect width={WIDTH} height={HEIGHT} rx={6} />
                <text x={8} y={18} class="node-kind">
                  {node.kind}
                  {node.verdicts?.length ? ` · ${node.verdicts[node.verdicts.length - 1]}` : ""}
                  {node.raw ? " · raw" : ""}
                </text>
                <text x={8} y={36} class="node-label">
                  {label(node).slice(0, 28)}
                </text>
                <title>{label(node)}</title>
              </g>
            );
            return link ? (
              <a href={link} aria-label={`${node.kind} ${label(node)}`}>
                {body}
              </a>
            ) : (
              body
            );
          })}
        </svg>
      </div>
    </>
  );
}
