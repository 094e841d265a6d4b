// Compare 2 to 50 runs: only what differs, dimension by dimension, overlaid curves of a
// chosen metric, and for many runs a parallel-coordinates view from params to a metric.
import { useMemo } from "preact/hooks";
import { History, RunRecord, metricSummaries, num, projectApi, request } from "../api";
import { Chart, Series } from "../chart";
import { number, value } from "../format";
import { setParams, useRoute } from "../route";
import { DiffView, ErrorLine, Loading, VerdictBadge, useLoad, Head } from "../ui";
import { verdictOf } from "../verdict";
import { ChartControls, historyUrl, useChartOptions } from "./run";

type Flat = Record<string, string>;

function flatten(value: unknown, prefix = "", out: Flat = {}): Flat {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      flatten(v, prefix ? `${prefix}.${k}` : k, out);
    }
  } else if (prefix) {
    out[prefix] = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

/** Per dimension, each run's values flattened to key -> text. */
function dimensions(run: RunRecord): Record<string, Flat> {
  const s = run.sections;
  const packages: Flat = {};
  for (const p of (s.environment?.packages ?? []) as { name: string; version: string }[]) {
    packages[p.name] = p.version;
  }
  const hardware = flatten(s.hardware ?? {});
  delete hardware.hostname;
  const inputs: Flat = {};
  for (const a of run.artifacts.filter((x) => x.kind === "input")) inputs[a.path] = a.digest.slice(0, 16);
  const outputs: Flat = {};
  for (const a of run.artifacts.filter((x) => x.kind === "output")) outputs[a.path] = a.digest.slice(0, 16);
  const metrics: Flat = {};
  for (const m of metricSummaries(run)) metrics[m.key] = number(m.last);
  return {
    params: { ...flatten(run.params), ...(s.command?.argv ? { argv: s.command.argv.join(" ") } : {}) },
    code: flatten({
      commit: s.code?.commit,
      branch: s.code?.branch,
      dirty: s.code?.dirty,
      diff: s.code?.diff?.digest,
    }),
    data: inputs,
    environment: {
      python: String(s.environment?.interpreter?.version ?? ""),
      ...Object.fromEntries(Object.entries(packages).map(([k, v]) => [`package ${k}`, v])),
    },
    seeds: flatten(s.seed ?? {}),
    hardware,
    determinism: flatten(s.determinism ?? {}),
    outputs,
    metrics,
  };
}

function differing(values: Flat[]): string[] {
  const keys = new Set<string>();
  values.forEach((v) => Object.keys(v).forEach((k) => keys.add(k)));
  return [...keys].sort().filter((k) => new Set(values.map((v) => v[k] ?? "")).size > 1);
}

export function ComparePage({ project }: { project: string }) {
  const { params } = useRoute();
  const ids = (params.get("runs") ?? "").split(",").filter(Boolean).slice(0, 50);
  const api = projectApi(project);
  const runs = useLoad(
    () => Promise.all(ids.map((id) => request<RunRecord>(`${api}/runs/${encodeURIComponent(id)}`))),
    [api, ids.join(",")],
  );
  if (ids.length < 2) {
    return <p class="muted">Pick 2 to 50 runs in the runs grid to compare them.</p>;
  }
  if (runs.loading) return <Loading label={`Loading ${ids.length} runs`} />;
  if (runs.error) return <ErrorLine error={runs.error} />;
  return <Comparison project={project} runs={runs.data!} />;
}

function Comparison({ project, runs }: { project: string; runs: RunRecord[] }) {
  const { params } = useRoute();
  const api = projectApi(project);
  const dims = useMemo(() => runs.map(dimensions), [runs]);
  const names = ["params", "code", "data", "environment", "seeds", "hardware", "determinism", "outputs", "metrics"];
  const metricKeys = [...new Set(runs.flatMap((r) => metricSummaries(r).map((m) => m.key)))].sort();
  const metric = params.get("metric") ?? metricKeys[0] ?? "";
  const p = encodeURIComponent(project);
  return (
    <section class="page compare-page" aria-labelledby="compare-title">
      <header class="page-head">
        <h1 id="compare-title">Compare {runs.length} runs</h1>
      </header>
      <table class="compare-runs" aria-label="Runs compared">
        <Head columns={["run", "status", "reproduction"]} />
        <tbody>
          {runs.map((r) => (
            <tr>
              <td>
                <a href={`/p/${p}/runs/${r.id}`}>{r.name}</a>
              </td>
              <td>{r.status}</td>
              <td>
                <VerdictBadge verdict={verdictOf(r.sections.verifications)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {names.map((name) => {
        const values = dims.map((d) => d[name]);
        const keys = differing(values);
        return (
          <section class="dimension" aria-labelledby={`dim-${name}`}>
            <h2 id={`dim-${name}`}>
              {name} <span class="muted">{keys.length ? `${keys.length} differ` : "same"}</span>
            </h2>
            {keys.length ? (
              <div class="scroll-x">
                <table aria-label={`${name} that differ`}>
                  <thead>
                    <tr>
                      <th scope="col">key</th>
                      {runs.map((r) => (
                        <th scope="col">{r.name}</th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {keys.slice(0, 500).map((k) => (
                      <tr>
                        <th scope="row">{k}</th>
                        {values.map((v) => (
                          <td>{v[k] ?? "—"}</td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
                {keys.length > 500 ? <p class="muted">{keys.length - 500} more differ.</p> : null}
              </div>
            ) : null}
          </section>
        );
      })}
      {runs.length === 2 ? <CodeDiff api={api} a={runs[0]} b={runs[1]} /> : null}
      {runs.length === 2 ? <Explained project={project} a={runs[0]} b={runs[1]} /> : null}
      <section aria-labelledby="curves-title">
        <h2 id="curves-title">Curves</h2>
        {metricKeys.length ? (
          <>
            <label>
              Metric{" "}
              <select value={metric} onChange={(e) => setParams({ metric: (e.target as HTMLSelectElement).value })}>
                {metricKeys.map((k) => (
                  <option value={k}>{k}</option>
                ))}
              </select>
            </label>
            <Overlay api={api} runs={runs} metric={metric} />
            {runs.length > 2 ? <Parallel runs={runs} metric={metric} /> : null}
          </>
        ) : (
          <p class="muted">These runs logged no metrics.</p>
        )}
      </section>
    </section>
  );
}

interface Explanation {
  against: string;
  against_name: string;
  time: number;
  verdict: string;
  baseline: string;
  factors: { factor: string; description: string; run: string; reproduces: string; cached: boolean }[];
  not_swappable: string[];
  conclusion: string;
}

/** The newest `lockstep explain` of these two runs (kept in the first run's record). */
function Explained({ project, a, b }: { project: string; a: RunRecord; b: RunRecord }) {
  const find = (x: RunRecord, y: RunRecord) =>
    [...((x.sections.explanations ?? []) as Explanation[])].reverse().find((e) => e.against === y.id);
  const found = find(a, b) ?? find(b, a);
  const first = find(a, b) ? a : b;
  const p = encodeURIComponent(project);
  return (
    <section aria-labelledby="explain-title">
      <h2 id="explain-title">Explanation</h2>
      {!found ? (
        <p class="muted">
          Not explained yet: <code>lockstep explain {a.id.slice(0, 10)} {b.id.slice(0, 10)}</code> finds which
          factor makes their results differ.
        </p>
      ) : (
        <>
          <p>
            {first.name} against {found.against_name}: <strong>{found.verdict.replace("_", " ")}</strong>.{" "}
            {found.baseline}
          </p>
          {found.factors.length ? (
            <table aria-label="Factors swapped one at a time">
              <Head columns={["factor", "what differs", "the result then matches", "run"]} />
              <tbody>
                {found.factors.map((f) => (
                  <tr>
                    <td>{f.factor}</td>
                    <td>{f.description}</td>
                    <td>{f.reproduces}</td>
                    <td>
                      <a href={`/p/${p}/runs/${f.run}`}>{f.run.slice(0, 10)}</a>
                      {f.cached ? " (cached)" : ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {found.not_swappable.map((n) => (
            <p class="muted">{n}</p>
          ))}
          <p>{found.conclusion}</p>
        </>
      )}
    </section>
  );
}

function CodeDiff({ api, a, b }: { api: string; a: RunRecord; b: RunRecord }) {
  const diff = useLoad(
    () => request<{ differences: Record<string, any> }>(`${api}/hub/diff?a=${a.id}&b=${b.id}`),
    [api, a.id, b.id],
  );
  if (diff.loading) return <Loading label="Comparing code" />;
  if (diff.error) return <ErrorLine error={diff.error} />;
  const code = diff.data?.differences.code;
  if (!code?.diff) return null;
  return (
    <section aria-labelledby="codediff-title">
      <h2 id="codediff-title">Code diff</h2>
      <DiffView text={String(code.diff)} label="Code diff between the two runs" />
    </section>
  );
}

function Overlay({ api, runs, metric }: { api: string; runs: RunRecord[]; metric: string }) {
  const options = useChartOptions();
  const histories = useLoad(
    () =>
      Promise.all(
        runs.map((r) =>
          metricSummaries(r).some((m) => m.key === metric)
            ? request<History>(historyUrl(api, r.id, metric)).then((h) => ({ label: r.name, ...h }))
            : Promise.resolve(null),
        ),
      ),
    [api, runs.map((r) => r.id).join(","), metric],
  );
  const series = useMemo(
    () => (histories.data ?? []).filter((s): s is Series & History => s !== null),
    [histories.data],
  );
  if (histories.loading) return <Loading label="Loading curves" />;
  if (histories.error) return <ErrorLine error={histories.error} />;
  return (
    <>
      <ChartControls options={options} />
      <Chart title={metric} series={series} options={options} height={320} />
    </>
  );
}

/** Parallel coordinates: one axis per param that differs, then the metric; a line per run. */
function Parallel({ runs, metric }: { runs: RunRecord[]; metric: string }) {
  const paramKeys = differing(runs.map((r) => flatten(r.params))).slice(0, 12);
  const axes = [...paramKeys.map((k) => ({ key: k, metric: false })), { key: metric, metric: true }];
  const width = Math.max(480, axes.length * 140);
  const height = 300;
  const pad = 30;
  const x = (i: number) => pad + (i * (width - 2 * pad)) / Math.max(1, axes.length - 1);
  const scales = axes.map((axis) => {
    const raw = runs.map((r) =>
      axis.metric ? num(metricSummaries(r).find((m) => m.key === axis.key)?.last) : r.params[axis.key],
    );
    const numeric = raw.every((v) => typeof v === "number" || v === undefined);
    if (numeric) {
      const values = raw.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
      const low = Math.min(...values);
      const high = Math.max(...values);
      return (v: unknown) =>
        typeof v === "number" && Number.isFinite(v)
          ? height - pad - ((v - low) / (high - low || 1)) * (height - 2 * pad)
          : null;
    }
    const categories = [...new Set(raw.map((v) => value(v)))].sort();
    return (v: unknown) =>
      height - pad - (categories.indexOf(value(v)) / Math.max(1, categories.length - 1)) * (height - 2 * pad);
  });
  return (
    <figure class="parallel">
      <figcaption>Params to {metric}</figcaption>
      <svg
        role="img"
        aria-label={`Parallel coordinates of ${paramKeys.length} params and ${metric} over ${runs.length} runs`}
        viewBox={`0 0 ${width} ${height}`}
        width={width}
        height={height}
      >
        {axes.map((axis, i) => (
          <g>
            <line x1={x(i)} x2={x(i)} y1={pad} y2={height - pad} class="axis" />
            <text x={x(i)} y={pad - 10} text-anchor="middle" class="axis-label">
              {axis.key}
            </text>
          </g>
        ))}
        {runs.map((r, index) => {
          const points = axes
            .map((axis, i) => {
              const v = axis.metric ? num(metricSummaries(r).find((m) => m.key === axis.key)?.last) : r.params[axis.key];
              const y = scales[i](v);
              return y === null ? null : `${x(i)},${y}`;
            })
            .filter(Boolean)
            .join(" ");
          return (
            <polyline points={points} class="line" style={{ stroke: `hsl(${(index * 47) % 360} 70% 45%)` }}>
              <title>{r.name}</title>
            </polyline>
          );
        })}
      </svg>
    </figure>
  );
}
