// Small pieces every page uses: data loading, the verdict badge, status, tabs, tables
// of key and value, progress and errors. Text from run data is always rendered as text.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, Verdict } from "./api";

export interface Loaded<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/** Load what fn fetches whenever a dependency changes; a stale answer is dropped. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const generation = useRef(0);
  useEffect(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    fn().then(
      (data) => mine === generation.current && setState({ data, error: null, loading: false }),
      (error: Error) => mine === generation.current && setState({ data: null, error, loading: false }),
    );
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function verdictLabel(verdict: Verdict | null | undefined): string {
  if (!verdict) return "never verified";
  if (verdict.verdict === "NOT_REPRODUCED" && verdict.within_noise) return "within noise";
  return verdict.verdict.replace("_", " ");
}

export function VerdictBadge({ verdict }: { verdict: Verdict | null | undefined }) {
  const label = verdictLabel(verdict);
  const kind = !verdict
    ? "never"
    : verdict.verdict === "NOT_REPRODUCED" && verdict.within_noise
      ? "noise"
      : verdict.verdict.toLowerCase();
  return (
    <span class={`badge verdict-${kind}`} title={verdict ? `verified ${verdict.count} time(s)` : label}>
      {label}
    </span>
  );
}

export function StatusPill({ status }: { status: string }) {
  return <span class={`status status-${status}`}>{status}</span>;
}

export function ErrorLine({ error }: { error: Error | null }) {
  if (!error) return null;
  const hint =
    error instanceof ApiError && error.status === 401 ? " (log in again from the login page)" : "";
  return (
    <p class="error" role="alert">
      {error.message}
      {hint}
    </p>
  );
}

export function Loading({ label = "Loading", progress }: { label?: string; progress?: number }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <progress aria-label={label} max={1} value={progress} />
      <span>{progress === undefined ? `${label}…` : `${label} ${Math.round(progress * 100)}%`}</span>
    </div>
  );
}

export function KeyValues({ rows, label }: { rows: [string, ComponentChildren][]; label: string }) {
  if (!rows.length) return <p class="muted">None recorded.</p>;
  return (
    <table class="kv" aria-label={label}>
      <tbody>
        {rows.map(([key, value]) => (
          <tr key={key}>
            <th scope="row">{key}</th>
            <td>{value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export interface Tab {
  id: string;
  label: string;
}

/** An ARIA tab list: arrow keys move between tabs, the chosen tab is in the URL. */
export function Tabs({
  tabs,
  active,
  onSelect,
  label,
}: {
  tabs: Tab[];
  active: string;
  onSelect: (id: string) => void;
  label: string;
}) {
  const keydown = (event: KeyboardEvent) => {
    const index = tabs.findIndex((t) => t.id === active);
    let next = index;
    if (event.key === "ArrowRight") next = (index + 1) % tabs.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + tabs.length) % tabs.length;
    else return;
    event.preventDefault();
    onSelect(tabs[next].id);
    requestAnimationFrame(() => document.getElementById(`tab-${tabs[next].id}`)?.focus());
  };
  return (
    <div role="tablist" aria-label={label} class="tabs" onKeyDown={keydown}>
      {tabs.map((tab) => (
        <button
          type="button"
          role="tab"
          id={`tab-${tab.id}`}
          aria-selected={tab.id === active}
          aria-controls={`panel-${tab.id}`}
          tabIndex={tab.id === active ? 0 : -1}
          onClick={() => onSelect(tab.id)}
        >
          {tab.label}
        </button>
      ))}
    </div>
  );
}

export function Panel({ id, children }: { id: string; children: ComponentChildren }) {
  return (
    <div role="tabpanel" id={`panel-${id}`} aria-labelledby={`tab-${id}`} class="panel">
      {children}
    </div>
  );
}

/** A unified diff, line by line, coloured by what each line does. */
export function DiffView({ text, label }: { text: string; label: string }) {
  const lines = text.split("\n");
  return (
    <pre class="diff" aria-label={label} tabIndex={0}>
      {lines.map((line, i) => {
        const kind = line.startsWith("+++") || line.startsWith("---")
          ? "file"
          : line.startsWith("@@")
            ? "hunk"
            : line.startsWith("+")
              ? "add"
              : line.startsWith("-")
                ? "del"
                : line.startsWith("diff ")
                  ? "file"
                  : "ctx";
        return (
          <span key={i} class={`diff-${kind}`}>
            {line}
            {"\n"}
          </span>
        );
      })}
    </pre>
  );
}

/** A table's header row of column names. */
export function Head({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((name) => (
          <th scope="col">{name}</th>
        ))}
      </tr>
    </thead>
  );
}
