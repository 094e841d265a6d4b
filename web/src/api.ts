// The hub's client of lockstep's HTTP API: one fetch helper that turns the server's
// JSON errors into ApiError (with the filter column when the server names one).

export class ApiError extends Error {
  status: number;
  kind: string;
  context: Record<string, unknown>;
  constructor(status: number, message: string, kind: string, context: Record<string, unknown>) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.context = context;
  }
}

function csrfToken(): string {
  const found = document.cookie.split("; ").find((c) => c.startsWith("lockstep_csrf="));
  return found ? decodeURIComponent(found.slice("lockstep_csrf=".length)) : "";
}

export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.method && init.method !== "GET") {
    headers.set("x-csrf-token", csrfToken());
    if (init.body) headers.set("content-type", "application/json");
  }
  const answer = await fetch(path, { ...init, headers, credentials: "same-origin" });
  if (!answer.ok) {
    let message = `${answer.status} ${answer.statusText}`;
    let kind = "HTTPError";
    let context: Record<string, unknown> = {};
    try {
      const body = await answer.json();
      message = body.error ?? message;
      kind = body.kind ?? kind;
      context = body.context ?? {};
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(answer.status, message, kind, context);
  }
  return (await answer.json()) as T;
}

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const projectApi = (project: string) => `/api/v1/projects/${encodeURIComponent(project)}`;

export type Cells = [number | string | null, number | string | null, number | string | null];

export interface Verdict {
  verdict: string;
  within_noise: boolean;
  time: number;
  count: number;
}

export interface GridRun {
  id: string;
  name: string;
  experiment: string;
  status: string;
  start_time: number;
  end_time: number | null;
  host: string;
  params: Record<string, unknown>;
  metrics: Record<string, Cells>;
  tags: Record<string, string>;
  verdict: Verdict | null;
}

export interface RunsPage {
  offset: number;
  total?: number;
  runs: GridRun[];
}

export interface Summary {
  key: string;
  last: number | string | null;
  last_step: number;
  min: number | string | null;
  max: number | string | null;
  count: number;
}

export interface Artifact {
  path: string;
  digest: string;
  size: number;
  kind: string;
}

export interface RunRecord {
  id: string;
  name: string;
  experiment: string;
  status: string;
  start_time: number;
  end_time: number | null;
  host: string;
  pid: number;
  note: string;
  error: string | null;
  params: Record<string, unknown>;
  metrics: unknown[];
  tags: Record<string, string>;
  artifacts: Artifact[];
  sections: Record<string, any>;
}

export interface History {
  key: string;
  points: number;
  in_range?: number;
  steps: number[];
  values: (number | string)[];
  times: number[];
}

export function metricSummaries(record: RunRecord): Summary[] {
  // On the wire a summary is [key, last, last_step, min, max, count].
  return (record.metrics as unknown[][]).map((m) => ({
    key: String(m[0]),
    last: m[1] as number,
    last_step: m[2] as number,
    min: m[3] as number,
    max: m[4] as number,
    count: m[5] as number,
  }));
}

export function num(value: unknown): number {
  if (typeof value === "number") return value;
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return NaN;
}
