// How values read in the hub: times, durations, sizes, numbers, params.

export function when(seconds: number | null | undefined): string {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  return date.toISOString().replace("T", " ").slice(0, 19);
}

export function duration(start: number, end: number | null | undefined): string {
  if (!end) return "";
  const total = Math.max(0, end - start);
  if (total < 1) return `${Math.round(total * 1000)} ms`;
  if (total < 60) return `${total.toFixed(1)} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(total % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function size(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function number(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(4);
    return String(Number(value.toPrecision(6)));
  }
  return String(value);
}

export function value(item: unknown): string {
  if (item === null || item === undefined) return "";
  if (typeof item === "number") return number(item);
  if (typeof item === "string") return item;
  return JSON.stringify(item);
}

export function shortId(id: string): string {
  return id.slice(0, 10);
}
