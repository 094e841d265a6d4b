// The runs grid: every run of a project or experiment, columns chosen from params,
// metrics, tags and attributes, lockstep's filter grammar, sort, group by a param,
// live updates, selection for compare, CSV export. All of it lives in the URL.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { GridRun, RunsPage as Page, projectApi, query, request } from "../api";
import { duration, number, value, when } from "../format";
import { Column, Grid } from "../grid";
import { navigate, setParams, useRoute } from "../route";
import { ErrorLine, Loading, StatusPill, VerdictBadge, useLoad } from "../ui";

const PAGE = 100;
const LIVE_EVERY_MS = 3000;

interface FilterProblem {
  message: string;
  expression: string;
  column: number;
  problem: string;
}

interface Check {
  ok: boolean;
  error?: FilterProblem;
}

interface Keys {
  params: string[];
  metrics: string[];
  tags: string[];
}

const ATTRIBUTES: Record<string, { label: string; width: number; sort?: string }> = {
  status: { label: "status", width: 100, sort: "status" },
  verdict: { label: "reproduction", width: 150 },
  start_time: { label: "started", width: 170, sort: "start_time" },
  duration: { label: "duration", width: 100, sort: "duration" },
  experiment: { label: "experiment", width: 140, sort: "experiment" },
  host: { label: "host", width: 120, sort: "host" },
  id: { label: "id", width: 240, sort: "id" },
};
const DEFAULT_ATTRIBUTES = ["status", "verdict", "start_time", "duration"];

function quoteKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/.test(key) ? key : `\`${key}\``;
}

/** The server's sort field for a column id, or null when it cannot sort by it. */
function sortField(id: string): string | null {
  if (id === "name") return "name";
  if (id in ATTRIBUTES) return ATTRIBUTES[id].sort ?? null;
  const [kind, ...rest] = id.split(":");
  const key = rest.join(":");
  if (kind === "params" || kind === "tags") return `${kind}.${quoteKey(key)}`;
  if (kind === "metrics") return `metrics.${quoteKey(key)}`;
  return null;
}

function column(id: string): Column<GridRun> | null {
  if (id in ATTRIBUTES) {
    const a = ATTRIBUTES[id];
    const render: Record<string, (r: GridRun) => unknown> = {
      status: (r) => <StatusPill status={r.status} />,
      verdict: (r) => <VerdictBadge verdict={r.verdict} />,
      start_time: (r) => when(r.start_time),
      duration: (r) => duration(r.start_time, r.end_time),
      experiment: (r) => r.experiment,
      host: (r) => r.host,
      id: (r) => r.id,
    };
    return { id, label: a.label, width: a.width, sortable: !!a.sort, render: render[id] as never };
  }
  const [kind, ...rest] = id.split(":");
  const key = rest.join(":");
  if (kind === "params") {
    return { id, label: key, width: 120, sortable: true, render: (r) => value(r.params[key]) };
  }
  if (kind === "tags") {
    return { id, label: `#${key}`, width: 120, sortable: true, render: (r) => r.tags[key] ?? "" };
  }
  if (kind === "metrics" || kind === "metrics.min" || kind === "metrics.max") {
    const index = kind === "metrics" ? 0 : kind === "metrics.min" ? 1 : 2;
    const suffix = ["", " (min)", " (max)"][index];
    return {
      id,
      label: `${key}${suffix}`,
      width: 120,
      numeric: true,
      sortable: index === 0,
      render: (r) => number(r.metrics[key]?.[index]),
    };
  }
  return null;
}

function exportColumn(id: string): string | null {
  if (id === "verdict") return "verdict";
  if (id === "duration") return null;
  if (id in ATTRIBUTES) return id;
  const [kind, ...rest] = id.split(":");
  const key = rest.join(":");
  if (kind === "params" || kind === "tags") return `${kind}.${key}`;
  if (kind === "metrics") return `metrics.${key}.last`;
  if (kind === "metrics.min") return `metrics.${key}.min`;
  if (kind === "metrics.max") return `metrics.${key}.max`;
  return null;
}

function storageKey(project: string, experiment: string): string {
  return `lockstep.columns.${project}.${experiment}`;
}

export function RunsPage({ project }: { project: string }) {
  const { params } = useRoute();
  const experiment = params.get("exp") ?? "";
  const filter = params.get("filter") ?? "";
  const sort = params.get("sort") ?? "";
  const group = params.get("group") ?? "";
  const selected = useMemo(
    () => new Set((params.get("sel") ?? "").split(",").filter(Boolean)),
    [params.get("sel")],
  );
  const api = projectApi(project);
  const experiments = useLoad(
    () => request<{ id: number; name: string }[]>(`${api}/experiments`),
    [project],
  );

  // Rows by window: pages of PAGE runs, fetched when the grid shows them.
  const [total, setTotal] = useState<number | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [, setVersion] = useState(0);
  const pages = useRef(new Map<number, GridRun[]>());
  const pending = useRef(new Set<number>());
  const generation = useRef(0);
  const view = useRef({ start: 0, end: 0 });
  // Whether total is the count of all matching runs yet, or the first window's size
  // (a ref for the callbacks, a state for the label: a count equal to the window's
  // size changes no total, and must still change the label).
  const counted = useRef(false);
  const [isCounted, setCounted] = useState(false);
  const [firstKeys, setFirstKeys] = useState<Keys | null>(null);
  const [filterError, setFilterError] = useState<FilterProblem | null>(null);

  const fetchPage = useCallback(
    (page: number, withTotal: boolean) => {
      const mine = generation.current;
      pending.current.add(page);
      return request<Page>(
        `${api}/hub/runs${query({
          experiment,
          filter,
          sort,
          offset: page * PAGE,
          limit: PAGE,
          total: withTotal,
        })}`,
      ).then(
        (answer) => {
          if (mine !== generation.current) return;
          pending.current.delete(page);
          pages.current.set(page, answer.runs);
          if (answer.total !== undefined) {
            counted.current = true;
            setCounted(true);
            setTotal(answer.total);
          }
          setError(null);
          setVersion((v) => v + 1);
          return answer;
        },
        (failure: Error) => {
          if (mine !== generation.current) return;
          pending.current.delete(page);
          setError(failure);
          if (withTotal) setTotal(0);
        },
      );
    },
    [api, experiment, filter, sort],
  );

  useEffect(() => {
    generation.current += 1;
    pages.current = new Map();
    pending.current = new Set();
    setTotal(null);
    setFilterError(null);
    counted.current = false;
    setCounted(false);
    const mine = generation.current;
    const checked = filter || sort
      ? request<Check>(`${api}/hub/check${query({ filter, sort })}`)
      : Promise.resolve<Check>({ ok: true });
    checked.then((check) => {
      if (mine !== generation.current) return;
      if (!check.ok) {
        setFilterError(check.error ?? null);
        setTotal(0);
        return;
      }
      // The first rows and the count in parallel: a filter's rows show as soon as
      // they are found, the count of all matching runs (a scan) follows.
      request<{ count: number }>(`${api}/runs/count${query({ experiment, filter })}`).then(
        (answer) => {
          if (mine !== generation.current) return;
          counted.current = true;
          setCounted(true);
          setTotal(answer.count);
        },
        setError,
      );
      fetchPage(0, false)?.then((answer) => {
      if (answer && !counted.current) setTotal((known) => known ?? answer.runs.length);
      if (!answer || firstKeys) return;
      const keys: Keys = { params: [], metrics: [], tags: [] };
      const seen = { params: new Set<string>(), metrics: new Set<string>(), tags: new Set<string>() };
      for (const run of answer.runs) {
        Object.keys(run.params).forEach((k) => seen.params.add(k));
        Object.keys(run.metrics).forEach((k) => seen.metrics.add(k));
      }
      keys.params = [...seen.params].sort();
      keys.metrics = [...seen.metrics].sort();
      setFirstKeys(keys);
      });
    }, setError);
  }, [fetchPage]);

  // At most two windows in flight, always the ones in view now: a fast scroll past
  // thousands of rows asks only for where it stops, not for every page on the way.
  const pump = useCallback(() => {
    const { start, end } = view.current;
    const first = Math.floor(start / PAGE);
    const last = Math.floor(Math.max(start, end - 1) / PAGE);
    for (let page = first; page <= last && pending.current.size < 2; page++) {
      if (!pages.current.has(page) && !pending.current.has(page)) {
        fetchPage(page, false)?.finally(() => pump());
      }
    }
  }, [fetchPage]);
  const onRange = useCallback(
    (start: number, end: number) => {
      view.current = { start, end };
      pump();
    },
    [pump],
  );

  // Live: while a run in view is running, its window is fetched again every few seconds.
  useEffect(() => {
    const timer = window.setInterval(() => {
      const { start, end } = view.current;
      const first = Math.floor(start / PAGE);
      const last = Math.floor(Math.max(start, end - 1) / PAGE);
      let live = false;
      for (let page = first; page <= last; page++) {
        if (pages.current.get(page)?.some((r) => r.status === "running")) live = true;
      }
      if (!live || document.hidden) return;
      for (let page = first; page <= last; page++) fetchPage(page, page === first);
    }, LIVE_EVERY_MS);
    return () => window.clearInterval(timer);
  }, [fetchPage]);

  const rowAt = useCallback((index: number) => {
    const page = pages.current.get(Math.floor(index / PAGE));
    return page?.[index % PAGE];
  }, []);

  // Columns: the URL's, else the ones remembered for this experiment, else defaults.
  const remembered = localStorage.getItem(storageKey(project, experiment));
  const defaults = firstKeys
    ? [
        ...DEFAULT_ATTRIBUTES,
        ...firstKeys.params.slice(0, 4).map((k) => `params:${k}`),
        ...firstKeys.metrics.slice(0, 4).map((k) => `metrics:${k}`),
      ]
    : DEFAULT_ATTRIBUTES;
  const chosen = (params.get("cols") ?? remembered ?? defaults.join(","))
    .split(",")
    .filter(Boolean);
  const setColumns = (ids: string[]) => {
    localStorage.setItem(storageKey(project, experiment), ids.join(","));
    setParams({ cols: ids.join(",") });
  };

  const toggle = (run: GridRun) => {
    const next = new Set(selected);
    if (next.has(run.id)) next.delete(run.id);
    else next.add(run.id);
    setParams({ sel: [...next].join(",") });
  };
  const columns: Column<GridRun>[] = [
    {
      id: "select",
      label: "select",
      width: 56,
      render: (r) => (
        <input
          type="checkbox"
          aria-label={`select run ${r.name}`}
          checked={selected.has(r.id)}
          onChange={() => toggle(r)}
          tabIndex={-1}
        />
      ),
    },
    {
      id: "name",
      label: "run",
      width: 220,
      sortable: true,
      render: (r) => (
        <a href={`/p/${encodeURIComponent(project)}/runs/${r.id}`} title={r.id}>
          {r.name}
        </a>
      ),
    },
    ...chosen.map(column).filter((c): c is Column<GridRun> => c !== null),
  ];

  const sortState = useMemo(() => {
    if (!sort) return null;
    const first = sort.split(",")[0];
    const descending = first.startsWith("-");
    const field = first.replace(/^-/, "");
    const id = columns.find((c) => sortField(c.id) === field)?.id ?? field;
    return { id, descending };
  }, [sort, chosen.join(",")]);
  const onSort = (id: string) => {
    const field = sortField(id);
    if (!field) return;
    const descending = sortState?.id === id ? !sortState.descending : true;
    setParams({ sort: `${descending ? "-" : ""}${field}` });
  };

  const exportHref = `${api}/hub/runs.csv${query({
    experiment,
    filter,
    sort,
    columns: chosen.map(exportColumn).filter(Boolean).join(","),
  })}`;

  return (
    <section class="page runs-page" aria-labelledby="runs-title">
      <header class="page-head">
        <h1 id="runs-title">Runs</h1>
        <label>
          Experiment{" "}
          <select
            value={experiment}
            onChange={(e) => setParams({ exp: (e.target as HTMLSelectElement).value, sel: null })}
          >
            <option value="">all experiments</option>
            {(experiments.data ?? []).map((e) => (
              <option value={e.name}>{e.name}</option>
            ))}
          </select>
        </label>
        <span class="count" aria-live="polite">
          {total === null
            ? ""
            : isCounted
              ? `${total.toLocaleString()} run${total === 1 ? "" : "s"}`
              : "counting runs…"}
        </span>
      </header>
      <FilterBox value={filter} error={filterError} />
      {error ? <ErrorLine error={error} /> : null}
      <div class="toolbar" role="toolbar" aria-label="Runs actions">
        <ColumnChooser api={api} experiment={experiment} chosen={chosen} onChange={setColumns} />
        <GroupChooser api={api} experiment={experiment} group={group} />
        <a class="button" href={exportHref} download="runs.csv">
          Export CSV
        </a>
        <button
          type="button"
          disabled={selected.size < 2 || selected.size > 50}
          onClick={() =>
            navigate(`/p/${encodeURIComponent(project)}/compare?runs=${[...selected].join(",")}`)
          }
        >
          Compare {selected.size ? `(${selected.size})` : ""}
        </button>
        {selected.size ? (
          <button type="button" onClick={() => setParams({ sel: null })}>
            Clear selection
          </button>
        ) : null}
      </div>
      {group ? (
        <Groups
          api={api}
          experiment={experiment}
          filter={filter}
          group={group}
          metrics={chosen.filter((c) => c.startsWith("metrics:")).map((c) => c.slice(8))}
        />
      ) : total === null ? (
        <Loading label="Loading runs" />
      ) : total === 0 && !error && !filterError ? (
        <p class="muted">No runs match. Start one with lockstep run -- python train.py.</p>
      ) : (
        <Grid
          label="Runs"
          columns={columns}
          total={total}
          rowAt={rowAt}
          rowKey={(r) => r.id}
          onRange={onRange}
          sort={sortState}
          onSort={onSort}
          onOpen={(r) => navigate(`/p/${encodeURIComponent(project)}/runs/${r.id}`)}
          isSelected={(r) => selected.has(r.id)}
          onToggle={toggle}
        />
      )}
    </section>
  );
}

function FilterBox({ value: current, error }: { value: string; error: FilterProblem | null }) {
  const [text, setText] = useState(current);
  useEffect(() => setText(current), [current]);
  const column = error ? error.column : 0;
  return (
    <form
      class="filter"
      role="search"
      onSubmit={(event) => {
        event.preventDefault();
        setParams({ filter: text.trim(), sel: null });
      }}
    >
      <input
        type="search"
        role="searchbox"
        aria-label="Filter runs"
        aria-invalid={error ? "true" : undefined}
        aria-describedby={error ? "filter-error" : undefined}
        placeholder="params.lr > 0.01 and metrics.acc >= 0.9 and status = 'finished'"
        value={text}
        spellcheck={false}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Filter</button>
      {error ? (
        <div id="filter-error" class="filter-error" role="alert">
          <pre aria-hidden="true">
            {error.expression}
            {"\n"}
            {" ".repeat(Math.max(0, column - 1))}^
          </pre>
          <span>
            column {column}: {error.problem}
          </span>
        </div>
      ) : null}
    </form>
  );
}

function ColumnChooser({
  api,
  experiment,
  chosen,
  onChange,
}: {
  api: string;
  experiment: string;
  chosen: string[];
  onChange: (ids: string[]) => void;
}) {
  const [open, setOpen] = useState(false);
  const [search, setSearch] = useState("");
  const keys = useLoad(
    () => (open ? request<Keys>(`${api}/hub/keys${query({ experiment })}`) : Promise.resolve(null)),
    [open, api, experiment],
  );
  const options: [string, string][] = [
    ...Object.entries(ATTRIBUTES).map(([id, a]) => [id, a.label] as [string, string]),
    ...(keys.data?.params ?? []).map((k) => [`params:${k}`, `param ${k}`] as [string, string]),
    ...(keys.data?.metrics ?? []).flatMap((k) => [
      [`metrics:${k}`, `metric ${k} (last)`] as [string, string],
      [`metrics.min:${k}`, `metric ${k} (min)`] as [string, string],
      [`metrics.max:${k}`, `metric ${k} (max)`] as [string, string],
    ]),
    ...(keys.data?.tags ?? []).map((k) => [`tags:${k}`, `tag ${k}`] as [string, string]),
  ];
  const shown = options.filter(([, label]) => label.toLowerCase().includes(search.toLowerCase()));
  return (
    <div class="popover-anchor">
      <button type="button" aria-expanded={open} aria-controls="column-chooser" onClick={() => setOpen(!open)}>
        Columns
      </button>
      {open ? (
        <div id="column-chooser" class="popover" role="dialog" aria-label="Choose columns">
          <input
            type="search"
            aria-label="Find a column"
            placeholder="find a column"
            value={search}
            onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
          />
          {keys.loading ? <Loading label="Loading columns" /> : null}
          <ul class="choices">
            {shown.slice(0, 500).map(([id, label]) => (
              <li>
                <label>
                  <input
                    type="checkbox"
                    checked={chosen.includes(id)}
                    onChange={() =>
                      onChange(chosen.includes(id) ? chosen.filter((c) => c !== id) : [...chosen, id])
                    }
                  />{" "}
                  {label}
                </label>
              </li>
            ))}
          </ul>
          {shown.length > 500 ? <p class="muted">{shown.length - 500} more: narrow the search.</p> : null}
          <button type="button" onClick={() => setOpen(false)}>
            Done
          </button>
        </div>
      ) : null}
    </div>
  );
}

function GroupChooser({ api, experiment, group }: { api: string; experiment: string; group: string }) {
  const keys = useLoad(() => request<Keys>(`${api}/hub/keys${query({ experiment })}`), [api, experiment]);
  return (
    <label>
      Group by{" "}
      <select value={group} onChange={(e) => setParams({ group: (e.target as HTMLSelectElement).value })}>
        <option value="">no grouping</option>
        {(keys.data?.params ?? []).map((k) => (
          <option value={k}>{k}</option>
        ))}
      </select>
    </label>
  );
}

interface Group {
  value: unknown;
  runs: number;
  metrics: Record<string, { mean: number | null; min: number | null; max: number | null; runs: number }>;
}

function Groups({
  api,
  experiment,
  filter,
  group,
  metrics,
}: {
  api: string;
  experiment: string;
  filter: string;
  group: string;
  metrics: string[];
}) {
  const found = useLoad(
    () =>
      request<{ groups: Group[] }>(
        `${api}/hub/groups${query({ by: group, metrics: metrics.join(","), experiment, filter })}`,
      ),
    [api, experiment, filter, group, metrics.join(",")],
  );
  if (found.loading) return <Loading label="Grouping runs" />;
  if (found.error) return <ErrorLine error={found.error} />;
  const narrow = (v: unknown) => {
    const clause =
      v === null
        ? `params.${quoteKey(group)} is null`
        : `params.${quoteKey(group)} = ${typeof v === "number" ? v : `'${String(v).replace(/'/g, "''")}'`}`;
    setParams({ group: null, filter: filter ? `(${filter}) and ${clause}` : clause });
  };
  return (
    <table class="groups" aria-label={`Runs grouped by ${group}`}>
      <thead>
        <tr>
          <th scope="col">{group}</th>
          <th scope="col">runs</th>
          {metrics.map((m) => (
            <th scope="col">{m} mean (min – max)</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {(found.data?.groups ?? []).map((g) => (
          <tr>
            <th scope="row">
              <button type="button" class="link" onClick={() => narrow(g.value)}>
                {g.value === null ? "(not set)" : value(g.value)}
              </button>
            </th>
            <td class="num">{g.runs}</td>
            {metrics.map((m) => {
              const cell = g.metrics[m];
              return (
                <td class="num">
                  {cell && cell.runs ? `${number(cell.mean)} (${number(cell.min)} – ${number(cell.max)})` : ""}
                </td>
              );
            })}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
