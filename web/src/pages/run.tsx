// One run: how to reproduce it, its code, data, environment, metrics, logs, artifacts,
// verification history and report. The open tab and chart settings are in the URL.
import { useMemo, useState } from "preact/hooks";
import { Artifact, History, RunRecord, metricSummaries, projectApi, query, request } from "../api";
import { Chart, ChartOptions, Series } from "../chart";
import { duration, number, shortId, size, value, when } from "../format";
import { setParams, useRoute } from "../route";
import {
  DiffView,
  ErrorLine,
  KeyValues,
  Loading,
  Panel,
  StatusPill,
  Tabs,
  VerdictBadge,
  useLoad,
  Head,
} from "../ui";
import { entryVerdict, verdictOf } from "../verdict";

const TABS = [
  { id: "overview", label: "Overview" },
  { id: "code", label: "Code" },
  { id: "data", label: "Inputs & outputs" },
  { id: "environment", label: "Environment" },
  { id: "metrics", label: "Metrics" },
  { id: "logs", label: "Logs" },
  { id: "artifacts", label: "Artifacts" },
  { id: "verification", label: "Verification" },
  { id: "report", label: "Report" },
];
const CHART_POINTS = 2000;

export function RunPage({ project, runId }: { project: string; runId: string }) {
  const { params } = useRoute();
  const tab = params.get("tab") ?? "overview";
  const api = projectApi(project);
  const run = useLoad(() => request<RunRecord>(`${api}/runs/${encodeURIComponent(runId)}`), [api, runId]);
  if (run.loading && !run.data) return <Loading label="Loading run" />;
  if (run.error) return <ErrorLine error={run.error} />;
  const record = run.data!;
  const verdict = verdictOf(record.sections.verifications);
  return (
    <section class="page run-page" aria-labelledby="run-title">
      <header class="page-head">
        <h1 id="run-title">{record.name}</h1>
        <StatusPill status={record.status} />
        <VerdictBadge verdict={verdict} />
        <span class="muted mono">{record.id}</span>
        <a href={`/p/${encodeURIComponent(project)}/lineage?ref=${record.id}`}>Lineage</a>
      </header>
      <Tabs tabs={TABS} active={tab} label="Run sections" onSelect={(id) => setParams({ tab: id === "overview" ? null : id }, { replace: false })} />
      <Panel id={tab}>
        {tab === "overview" ? <Overview record={record} /> : null}
        {tab === "code" ? <Code api={api} record={record} /> : null}
        {tab === "data" ? <Data project={project} record={record} /> : null}
        {tab === "environment" ? <Environment record={record} /> : null}
        {tab === "metrics" ? <Metrics api={api} record={record} /> : null}
        {tab === "logs" ? <Logs api={api} record={record} /> : null}
        {tab === "artifacts" ? <Artifacts api={api} record={record} /> : null}
        {tab === "verification" ? <Verification project={project} record={record} /> : null}
        {tab === "report" ? <Report api={api} record={record} /> : null}
      </Panel>
    </section>
  );
}

function Overview({ record }: { record: RunRecord }) {
  const command = record.sections.command ?? {};
  const seed = record.sections.seed ?? {};
  const argv: string[] = command.argv ?? [];
  return (
    <div class="cards">
      <section class="card" aria-labelledby="reproduce-title">
        <h2 id="reproduce-title">Reproduce it</h2>
        <pre class="command" tabIndex={0}>{`lockstep rerun ${record.id}\nlockstep verify ${record.id}`}</pre>
        {argv.length ? (
          <p>
            Command: <code>{argv.join(" ")}</code>
            {command.cwd && command.cwd !== "." ? <> in <code>{command.cwd}</code></> : null}
          </p>
        ) : null}
      </section>
      <section class="card" aria-labelledby="facts-title">
        <h2 id="facts-title">Run</h2>
        <KeyValues
          label="Run facts"
          rows={[
            ["experiment", record.experiment],
            ["status", record.status],
            ["started", when(record.start_time)],
            ["duration", duration(record.start_time, record.end_time)],
            ["host", record.host],
            ["seed", seed.value !== undefined ? value(seed.value) : "not recorded"],
            ["exit code", command.exit_code !== undefined ? String(command.exit_code) : ""],
            ...(record.error ? ([["error", record.error]] as [string, string][]) : []),
            ...(record.note ? ([["note", record.note]] as [string, string][]) : []),
          ]}
        />
      </section>
      <section class="card" aria-labelledby="params-title">
        <h2 id="params-title">Params</h2>
        <KeyValues label="Params" rows={Object.entries(record.params).map(([k, v]) => [k, value(v)])} />
      </section>
      <section class="card" aria-labelledby="metrics-title">
        <h2 id="metrics-title">Final metrics</h2>
        <KeyValues
          label="Final metrics"
          rows={metricSummaries(record).map((m) => [
            m.key,
            `${number(m.last)} (min ${number(m.min)}, max ${number(m.max)}, ${m.count} points)`,
          ])}
        />
      </section>
      <section class="card" aria-labelledby="tags-title">
        <h2 id="tags-title">Tags</h2>
        <KeyValues label="Tags" rows={Object.entries(record.tags).map(([k, v]) => [k, v])} />
      </section>
    </div>
  );
}

function useText(api: string, digest: string | undefined, limit = 262144) {
  return useLoad(
    () =>
      digest
        ? request<{ text: string; truncated: boolean; binary: boolean }>(
            `${api}/hub/objects/${digest}/text${query({ limit })}`,
          )
        : Promise.resolve(null),
    [api, digest, limit],
  );
}

function TextBlock({ api, digest, label }: { api: string; digest?: string; label: string }) {
  const text = useText(api, digest);
  if (!digest) return <p class="muted">Nothing recorded.</p>;
  if (text.loading) return <Loading label={`Loading ${label}`} />;
  if (text.error) return <ErrorLine error={text.error} />;
  if (text.data?.binary) return <p class="muted">Binary content: download it instead.</p>;
  return (
    <>
      <pre class="text" aria-label={label} tabIndex={0}>{text.data?.text || "(empty)"}</pre>
      {text.data?.truncated ? <p class="muted">Shortened: download for the whole file.</p> : null}
    </>
  );
}

function Code({ api, record }: { api: string; record: RunRecord }) {
  const code = record.sections.code ?? {};
  const diff = useText(api, code.diff?.digest, 1 << 20);
  const files: { path: string; digest: string; size: number }[] = code.files ?? [];
  const [open, setOpen] = useState<string | null>(null);
  if (code.unavailable) return <p class="muted">Code not captured: {code.unavailable}</p>;
  return (
    <div>
      <KeyValues
        label="Code"
        rows={[
          ["kind", code.kind ?? ""],
          ["commit", code.commit ?? "none"],
          ["branch", code.branch ?? ""],
          ["remote", code.remote ?? ""],
          ["uncommitted changes", code.dirty ? "yes" : "no"],
          ["changed files", (code.changed ?? []).join(", ")],
        ]}
      />
      <h2>Uncommitted diff</h2>
      {!code.diff ? (
        <p class="muted">No uncommitted changes to tracked files.</p>
      ) : diff.loading ? (
        <Loading label="Loading diff" />
      ) : diff.error ? (
        <ErrorLine error={diff.error} />
      ) : (
        <DiffView text={diff.data?.text ?? ""} label="Uncommitted diff" />
      )}
      <h2>Untracked files</h2>
      {files.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="files">
          {files.map((f) => (
            <li>
              <button type="button" class="link" aria-expanded={open === f.path} onClick={() => setOpen(open === f.path ? null : f.path)}>
                {f.path}
              </button>{" "}
              <span class="muted">{size(f.size)}</span>
              {open === f.path ? <TextBlock api={api} digest={f.digest} label={f.path} /> : null}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function FileTable({ files, label }: { files: Artifact[]; label: string }) {
  if (!files.length) return <p class="muted">None recorded.</p>;
  return (
    <table aria-label={label}>
      <Head columns={["path", "size", "digest"]} />
      <tbody>
        {files.map((f) => (
          <tr>
            <td>{f.path}</td>
            <td class="num">{size(f.size)}</td>
            <td class="mono" title={f.digest}>{f.digest.slice(0, 16)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface LineageNode {
  id: string;
  kind: string;
  ref?: string;
}

function Data({ project, record }: { project: string; record: RunRecord }) {
  const api = projectApi(project);
  const up = useLoad(
    () => request<{ nodes: LineageNode[] }>(`${api}/lineage${query({ ref: record.id, depth: 1 })}`),
    [api, record.id],
  );
  const down = useLoad(
    () => request<{ nodes: LineageNode[] }>(`${api}/lineage${query({ ref: record.id, depth: 1, downstream: true })}`),
    [api, record.id],
  );
  const versions = [...(up.data?.nodes ?? []), ...(down.data?.nodes ?? [])].filter(
    (n) => n.kind === "dataset" || n.kind === "model",
  );
  const p = encodeURIComponent(project);
  return (
    <div>
      <h2>Inputs</h2>
      <FileTable files={record.artifacts.filter((a) => a.kind === "input")} label="Inputs" />
      <h2>Outputs</h2>
      <FileTable files={record.artifacts.filter((a) => a.kind === "output")} label="Outputs" />
      <h2>Dataset and model versions</h2>
      {up.loading || down.loading ? <Loading label="Loading versions" /> : null}
      {versions.length === 0 && !up.loading ? <p class="muted">No dataset or model version is linked.</p> : null}
      <ul>
        {versions.map((n) => {
          const [name, version] = (n.ref ?? "").split("@v");
          const page = n.kind === "dataset" ? "datasets" : "models";
          return (
            <li>
              <a href={`/p/${p}/${page}/${encodeURIComponent(name)}${n.kind === "dataset" ? `?v=${version}` : ""}`}>
                {n.kind} {n.ref}
              </a>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function Environment({ record }: { record: RunRecord }) {
  const environment = record.sections.environment ?? {};
  const [search, setSearch] = useState("");
  const packages: { name: string; version: string; installer?: string }[] = environment.packages ?? [];
  const shown = packages.filter((p) => p.name.toLowerCase().includes(search.toLowerCase()));
  const flat = (value: unknown, prefix = ""): [string, string][] => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flat(v, prefix ? `${prefix}.${k}` : k));
    }
    return [[prefix, Array.isArray(value) ? value.join(", ") : value === null ? "not set" : String(value)]];
  };
  return (
    <div class="cards">
      <section class="card wide" aria-labelledby="packages-title">
        <h2 id="packages-title">Packages ({packages.length})</h2>
        <input
          type="search"
          aria-label="Find a package"
          placeholder="find a package"
          value={search}
          onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
        />
        <table aria-label="Packages">
          <Head columns={["package", "version"]} />
          <tbody>
            {shown.map((p) => (
              <tr>
                <td>{p.name}</td>
                <td>{p.version}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section class="card" aria-labelledby="python-title">
        <h2 id="python-title">Interpreter</h2>
        <KeyValues label="Interpreter" rows={flat(environment.interpreter ?? {})} />
      </section>
      <section class="card" aria-labelledby="hardware-title">
        <h2 id="hardware-title">Hardware</h2>
        <KeyValues label="Hardware" rows={flat(record.sections.hardware ?? {})} />
      </section>
      <section class="card" aria-labelledby="determinism-title">
        <h2 id="determinism-title">Determinism and seeds</h2>
        <KeyValues
          label="Determinism"
          rows={[...flat(record.sections.determinism ?? {}, "determinism"), ...flat(record.sections.seed ?? {}, "seed")]}
        />
      </section>
      <section class="card" aria-labelledby="variables-title">
        <h2 id="variables-title">Environment variables</h2>
        <KeyValues label="Environment variables" rows={flat(environment.variables ?? {})} />
      </section>
    </div>
  );
}

export function useChartOptions(): ChartOptions {
  const { params } = useRoute();
  return {
    x: params.get("x") === "time" ? "time" : "step",
    log: params.get("log") === "1",
    smoothing: Math.min(0.99, Math.max(0, Number(params.get("smooth") ?? 0) || 0)),
  };
}

export function ChartControls({ options }: { options: ChartOptions }) {
  return (
    <div class="toolbar" role="toolbar" aria-label="Chart settings">
      <label>
        x axis{" "}
        <select value={options.x} onChange={(e) => setParams({ x: (e.target as HTMLSelectElement).value === "time" ? "time" : null })}>
          <option value="step">step</option>
          <option value="time">time</option>
        </select>
      </label>
      <label>
        <input type="checkbox" checked={options.log} onChange={() => setParams({ log: options.log ? null : 1 })} /> log scale
      </label>
      <label>
        smoothing{" "}
        <input
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={options.smoothing}
          aria-valuetext={String(options.smoothing)}
          onChange={(e) => setParams({ smooth: Number((e.target as HTMLInputElement).value) || null })}
        />
      </label>
      <span class="muted">Drag across a chart to zoom.</span>
    </div>
  );
}

export function historyUrl(api: string, runId: string, key: string, range?: [number, number]) {
  return `${api}/runs/${runId}/history${query({
    key,
    max_points: CHART_POINTS,
    min_step: range?.[0],
    max_step: range?.[1],
  })}`;
}

function MetricChart({ api, runId, metric, options }: { api: string; runId: string; metric: string; options: ChartOptions }) {
  const history = useLoad(() => request<History>(historyUrl(api, runId, metric)), [api, runId, metric]);
  const series = useMemo<Series[]>(
    () => (history.data ? [{ label: metric, ...history.data }] : []),
    [history.data],
  );
  if (history.loading) return <Loading label={`Loading ${metric}`} />;
  if (history.error) return <ErrorLine error={history.error} />;
  return (
    <Chart
      title={metric}
      series={series}
      options={options}
      detail={(min, max) =>
        request<History>(historyUrl(api, runId, metric, [min, max])).then((h) => [{ label: metric, ...h }])
      }
    />
  );
}

function Metrics({ api, record }: { api: string; record: RunRecord }) {
  const options = useChartOptions();
  const keys = metricSummaries(record).map((m) => m.key);
  if (!keys.length) return <p class="muted">This run logged no metrics.</p>;
  return (
    <div>
      <ChartControls options={options} />
      <div class="charts">
        {keys.map((key) => (
          <MetricChart api={api} runId={record.id} metric={key} options={options} />
        ))}
      </div>
    </div>
  );
}

function Logs({ api, record }: { api: string; record: RunRecord }) {
  const command = record.sections.command ?? {};
  return (
    <div>
      <h2>stdout</h2>
      <TextBlock api={api} digest={command.stdout?.digest} label="stdout" />
      <h2>stderr</h2>
      <TextBlock api={api} digest={command.stderr?.digest} label="stderr" />
    </div>
  );
}

const IMAGE = /\.(png|jpe?g|gif|webp|bmp)$/i;
const TEXT = /\.(txt|log|md|py|yaml|yml|toml|cfg|ini|json|jsonl|csv|tsv|sh)$/i;

function Preview({ api, artifact }: { api: string; artifact: Artifact }) {
  const textual = TEXT.test(artifact.path);
  const text = useText(api, textual ? artifact.digest : undefined, 65536);
  if (IMAGE.test(artifact.path)) {
    return (
      <img
        class="preview-image"
        alt={`preview of ${artifact.path}`}
        src={`${api}/hub/objects/${artifact.digest}/image${query({ name: artifact.path })}`}
      />
    );
  }
  if (!textual) return <p class="muted">No preview for this type: download it.</p>;
  if (text.loading) return <Loading label="Loading preview" />;
  if (text.error) return <ErrorLine error={text.error} />;
  const body = text.data?.text ?? "";
  if (/\.(csv|tsv)$/i.test(artifact.path)) {
    const separator = artifact.path.toLowerCase().endsWith(".tsv") ? "\t" : ",";
    const rows = body.split("\n").filter(Boolean).slice(0, 21).map((line) => line.split(separator));
    return (
      <table aria-label={`first rows of ${artifact.path}`}>
        <thead>
          <tr>{(rows[0] ?? []).map((c) => <th scope="col">{c}</th>)}</tr>
        </thead>
        <tbody>
          {rows.slice(1).map((r) => (
            <tr>{r.map((c) => <td>{c}</td>)}</tr>
          ))}
        </tbody>
      </table>
    );
  }
  if (/\.json$/i.test(artifact.path) && !text.data?.truncated) {
    try {
      return <pre class="text" tabIndex={0}>{JSON.stringify(JSON.parse(body), null, 2)}</pre>;
    } catch {
      /* not valid JSON: shown as text below */
    }
  }
  return <pre class="text" tabIndex={0}>{body}</pre>;
}

function Artifacts({ api, record }: { api: string; record: RunRecord }) {
  const [open, setOpen] = useState<string | null>(null);
  const items = record.artifacts.filter((a) => a.kind !== "input");
  if (!items.length) return <p class="muted">No artifacts or outputs.</p>;
  return (
    <ul class="artifacts">
      {items.map((a) => (
        <li>
          <button type="button" class="link" aria-expanded={open === a.path} onClick={() => setOpen(open === a.path ? null : a.path)}>
            {a.path}
          </button>{" "}
          <span class="muted">
            {a.kind}, {size(a.size)}, {a.digest.slice(0, 12)}
          </span>{" "}
          <a href={`${api}/hub/objects/${a.digest}/download${query({ name: a.path })}`} download>
            download<span class="visually-hidden"> {a.path}</span>
          </a>
          {open === a.path ? <Preview api={api} artifact={a} /> : null}
        </li>
      ))}
    </ul>
  );
}

function Verification({ project, record }: { project: string; record: RunRecord }) {
  const history: Record<string, unknown>[] = record.sections.verifications ?? [];
  if (!history.length) {
    return (
      <p class="muted">
        Never verified. Run <code>lockstep verify {shortId(record.id)}</code> to rerun it and judge the result.
      </p>
    );
  }
  return (
    <table aria-label="Verification history">
      <Head columns={["when", "kind", "verdict", "against", "what differed", "tolerance"]} />
      <tbody>
        {[...history].reverse().map((entry) => (
          <tr>
            <td>{when(entry.time as number)}</td>
            <td>{String(entry.kind ?? "reproduction")}</td>
            <td>
              <VerdictBadge verdict={entryVerdict(entry)} />
            </td>
            <td>
              {entry.against ? (
                <a href={`/p/${encodeURIComponent(project)}/runs/${entry.against}`}>{String(entry.against_name ?? entry.against)}</a>
              ) : null}
            </td>
            <td>{((entry.differences as string[]) ?? []).join(", ") || "nothing"}</td>
            <td>
              rtol {String(entry.rtol)}, atol {String(entry.atol)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Report({ api, record }: { api: string; record: RunRecord }) {
  const report = useLoad(() => request<{ markdown: string }>(`${api}/hub/runs/${record.id}/report`), [api, record.id]);
  if (report.loading) return <Loading label="Building the report" />;
  if (report.error) return <ErrorLine error={report.error} />;
  return <pre class="text report" aria-label="Reproducibility report" tabIndex={0}>{report.data?.markdown}</pre>;
}
