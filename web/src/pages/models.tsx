// Models: names, versions, aliases and every move of them, the producing run's
// reproduction verdict, and what each version holds (tensors, training state).
import { Verdict, projectApi, request } from "../api";
import { number, shortId, size, when } from "../format";
import { ErrorLine, KeyValues, Loading, VerdictBadge, useLoad, Head } from "../ui";

interface ModelVersion {
  model: string;
  version: number;
  ref: string;
  created_at: number;
  message: string;
  size: number;
  files: number;
  run: string | null;
  created_by: string;
  aliases: string[];
  model_aliases?: Record<string, number>;
  summary: Record<string, any>;
}

interface Move {
  alias: string;
  from: number | null;
  to: number | null;
  at: number;
  user: string;
  host: string;
  note: string;
}

export function ModelsPage({ project }: { project: string }) {
  const api = projectApi(project);
  const p = encodeURIComponent(project);
  const found = useLoad(() => request<{ models: ModelVersion[] }>(`${api}/models`), [api]);
  return (
    <section class="page" aria-labelledby="models-title">
      <header class="page-head">
        <h1 id="models-title">Models</h1>
      </header>
      {found.loading ? <Loading label="Loading models" /> : null}
      <ErrorLine error={found.error} />
      {found.data && !found.data.models.length ? (
        <p class="muted">No models yet: lockstep models register NAME --run RUN --path FILE.</p>
      ) : null}
      {found.data?.models.length ? (
        <table aria-label="Models">
          <Head columns={["model", "latest", "aliases", "size", "registered"]} />
          <tbody>
            {found.data.models.map((m) => (
              <tr>
                <td>
                  <a href={`/p/${p}/models/${encodeURIComponent(m.model)}`}>{m.model}</a>
                </td>
                <td>v{m.version}</td>
                <td>
                  {Object.entries(m.model_aliases ?? {}).map(([alias, v]) => (
                    <span class="badge alias">
                      {alias} → v{v}
                    </span>
                  ))}
                </td>
                <td class="num">{size(m.size)}</td>
                <td>{when(m.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function RunVerdict({ api, run }: { api: string; run: string }) {
  const found = useLoad(() => request<{ verdict: Verdict | null }>(`${api}/hub/runs/${run}/verdict`), [api, run]);
  if (found.loading) return <span class="muted">…</span>;
  if (found.error) return <span class="muted">run missing</span>;
  return <VerdictBadge verdict={found.data?.verdict} />;
}

function summaryRows(summary: Record<string, any>): [string, string][] {
  const rows: [string, string][] = [];
  for (const [key, value] of Object.entries(summary ?? {})) {
    if (value === null || value === undefined) continue;
    if (typeof value === "object") {
      if (Array.isArray(value)) rows.push([key, `${value.length} entries`]);
      else rows.push([key, Object.entries(value).slice(0, 8).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v).slice(0, 80) : number(v)}`).join("; ")]);
    } else rows.push([key, typeof value === "number" ? number(value) : String(value)]);
  }
  return rows;
}

export function ModelPage({ project, name }: { project: string; name: string }) {
  const api = projectApi(project);
  const p = encodeURIComponent(project);
  const found = useLoad(
    () =>
      request<{ versions: ModelVersion[]; aliases: Record<string, number>; alias_history: Move[] }>(
        `${api}/models/${encodeURIComponent(name)}/versions`,
      ),
    [api, name],
  );
  if (found.loading) return <Loading label="Loading model" />;
  if (found.error) return <ErrorLine error={found.error} />;
  const data = found.data!;
  return (
    <section class="page" aria-labelledby="model-title">
      <header class="page-head">
        <h1 id="model-title">Model {name}</h1>
        {Object.entries(data.aliases).map(([alias, v]) => (
          <span class="badge alias">
            {alias} → v{v}
          </span>
        ))}
      </header>
      {[...data.versions].reverse().map((v) => (
        <section class="card version" aria-labelledby={`v-${v.version}`}>
          <h2 id={`v-${v.version}`}>
            v{v.version} {v.aliases.map((a) => <span class="badge alias">{a}</span>)}
          </h2>
          <KeyValues
            label={`Version ${v.version}`}
            rows={[
              ["registered", `${when(v.created_at)} by ${v.created_by}`],
              ["message", v.message],
              ["size", `${size(v.size)} in ${v.files} file(s)`],
              [
                "producing run",
                v.run ? (
                  <>
                    <a href={`/p/${p}/runs/${v.run}`}>{shortId(v.run)}</a> <RunVerdict api={api} run={v.run} />
                  </>
                ) : (
                  "none"
                ),
              ],
              ["lineage", <a href={`/p/${p}/lineage?ref=${encodeURIComponent(`model:${name}@v${v.version}`)}`}>upstream</a>],
            ]}
          />
          <details>
            <summary>Summary</summary>
            <KeyValues label={`Summary of version ${v.version}`} rows={summaryRows(v.summary)} />
          </details>
        </section>
      ))}
      <h2>Alias history</h2>
      {data.alias_history.length ? (
        <table aria-label="Alias history">
          <Head columns={["when", "alias", "from", "to", "by", "note"]} />
          <tbody>
            {[...data.alias_history].reverse().map((m) => (
              <tr>
                <td>{when(m.at)}</td>
                <td>{m.alias}</td>
                <td>{m.from === null ? "—" : `v${m.from}`}</td>
                <td>{m.to === null ? "deleted" : `v${m.to}`}</td>
                <td>
                  {m.user}@{m.host}
                </td>
                <td>{m.note}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No alias was ever set.</p>
      )}
    </section>
  );
}
