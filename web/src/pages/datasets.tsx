// Datasets: each one's versions with size and file count, a version's file tree, the
// diff between two versions, and the runs that used or made each version.
import { projectApi, request } from "../api";
import { shortId, size, when } from "../format";
import { setParams, useRoute } from "../route";
import { ErrorLine, Loading, useLoad, Head } from "../ui";

interface Version {
  dataset: string;
  version: number;
  ref: string;
  manifest: string;
  created_at: number;
  message: string;
  size: number;
  files: number;
  tags: string[];
}

interface VersionDetail extends Version {
  file_list: { path: string; digest: string; size: number }[];
  runs: { run: string; role: string }[];
}

export function DatasetsPage({ project }: { project: string }) {
  const api = projectApi(project);
  const found = useLoad(() => request<{ datasets: Version[] }>(`${api}/datasets`), [api]);
  const p = encodeURIComponent(project);
  return (
    <section class="page" aria-labelledby="datasets-title">
      <header class="page-head">
        <h1 id="datasets-title">Datasets</h1>
      </header>
      {found.loading ? <Loading label="Loading datasets" /> : null}
      <ErrorLine error={found.error} />
      {found.data && !found.data.datasets.length ? (
        <p class="muted">No datasets yet: lockstep data add PATH --name NAME.</p>
      ) : null}
      {found.data?.datasets.length ? (
        <table aria-label="Datasets">
          <Head columns={["dataset", "latest", "size", "files", "added"]} />
          <tbody>
            {found.data.datasets.map((d) => (
              <tr>
                <td>
                  <a href={`/p/${p}/datasets/${encodeURIComponent(d.dataset)}`}>{d.dataset}</a>
                </td>
                <td>v{d.version}</td>
                <td class="num">{size(d.size)}</td>
                <td class="num">{d.files}</td>
                <td>{when(d.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

function tree(files: { path: string; size: number }[]) {
  const folders = new Map<string, { path: string; size: number }[]>();
  for (const f of files) {
    const at = f.path.lastIndexOf("/");
    const folder = at < 0 ? "" : f.path.slice(0, at);
    if (!folders.has(folder)) folders.set(folder, []);
    folders.get(folder)!.push(f);
  }
  return [...folders.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function DatasetPage({ project, name }: { project: string; name: string }) {
  const { params } = useRoute();
  const api = projectApi(project);
  const p = encodeURIComponent(project);
  const versions = useLoad(
    () => request<{ versions: Version[] }>(`${api}/datasets/${encodeURIComponent(name)}/versions`),
    [api, name],
  );
  const list = versions.data?.versions ?? [];
  const chosen = Number(params.get("v") ?? list[list.length - 1]?.version ?? 0);
  const against = Number(params.get("against") ?? 0);
  const detail = useLoad(
    () =>
      chosen
        ? request<VersionDetail>(`${api}/datasets/${encodeURIComponent(name)}/versions/${chosen}`)
        : Promise.resolve(null),
    [api, name, chosen],
  );
  const other = useLoad(
    () =>
      against
        ? request<VersionDetail>(`${api}/datasets/${encodeURIComponent(name)}/versions/${against}`)
        : Promise.resolve(null),
    [api, name, against],
  );
  if (versions.loading) return <Loading label="Loading versions" />;
  if (versions.error) return <ErrorLine error={versions.error} />;
  return (
    <section class="page" aria-labelledby="dataset-title">
      <header class="page-head">
        <h1 id="dataset-title">Dataset {name}</h1>
        <a href={`/p/${p}/lineage?ref=${encodeURIComponent(`dataset:${name}@v${chosen}`)}&down=1`}>Lineage</a>
      </header>
      <table aria-label="Versions">
        <Head columns={["version", "size", "files", "added", "message", "tags", "compare"]} />
        <tbody>
          {[...list].reverse().map((v) => (
            <tr aria-current={v.version === chosen ? "true" : undefined}>
              <td>
                <button type="button" class="link" onClick={() => setParams({ v: v.version })}>
                  v{v.version}
                </button>
              </td>
              <td class="num">{size(v.size)}</td>
              <td class="num">{v.files}</td>
              <td>{when(v.created_at)}</td>
              <td>{v.message}</td>
              <td>{v.tags.join(", ")}</td>
              <td>
                {v.version !== chosen ? (
                  <button type="button" class="small" onClick={() => setParams({ against: v.version })}>
                    diff with v{chosen}
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {against && detail.data && other.data ? <VersionDiff a={other.data} b={detail.data} /> : null}
      {detail.loading ? <Loading label="Loading files" /> : null}
      {detail.data ? (
        <>
          <h2>Runs that used v{detail.data.version}</h2>
          {detail.data.runs.length ? (
            <ul>
              {detail.data.runs.map((r) => (
                <li>
                  <a href={`/p/${p}/runs/${r.run}`}>{shortId(r.run)}</a> <span class="muted">{r.role}</span>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">No run is linked to this version.</p>
          )}
          <h2>Files of v{detail.data.version}</h2>
          <ul class="tree" aria-label={`Files of v${detail.data.version}`}>
            {tree(detail.data.file_list).map(([folder, files]) => (
              <li>
                <details open={files.length < 50}>
                  <summary>
                    {folder || "(top)"} <span class="muted">{files.length} files</span>
                  </summary>
                  <ul>
                    {files.slice(0, 1000).map((f) => (
                      <li>
                        {f.path.slice(folder ? folder.length + 1 : 0) || f.path || "(the file)"}{" "}
                        <span class="muted">{size(f.size)}</span>
                      </li>
                    ))}
                  </ul>
                </details>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
}

function VersionDiff({ a, b }: { a: VersionDetail; b: VersionDetail }) {
  const before = new Map(a.file_list.map((f) => [f.path, f]));
  const after = new Map(b.file_list.map((f) => [f.path, f]));
  const added = [...after.keys()].filter((k) => !before.has(k)).sort();
  const removed = [...before.keys()].filter((k) => !after.has(k)).sort();
  const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k)!.digest !== after.get(k)!.digest).sort();
  return (
    <section aria-labelledby="version-diff-title">
      <h2 id="version-diff-title">
        v{a.version} → v{b.version}: {added.length} added, {removed.length} removed, {changed.length} changed
      </h2>
      <ul class="changes">
        {added.map((k) => (
          <li class="diff-add">+ {k}</li>
        ))}
        {removed.map((k) => (
          <li class="diff-del">− {k}</li>
        ))}
        {changed.map((k) => (
          <li class="diff-hunk">~ {k}</li>
        ))}
      </ul>
    </section>
  );
}
