// Metric charts on uPlot (canvas, made for long time series: a million points draw in
// milliseconds). The server sends each series downsampled with every bucket's extremes;
// a zoom asks it again for the detail of the steps in view.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { num } from "./api";

export interface Series {
  label: string;
  steps: number[];
  values: (number | string)[];
  times: number[];
}

export interface ChartOptions {
  x: "step" | "time";
  log: boolean;
  smoothing: number;
}

const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
  "#4f46e5", "#65a30d",
];

export function smooth(values: number[], weight: number): number[] {
  // An exponential moving average, debiased at the start (as TensorBoard draws it).
  if (weight <= 0) return values;
  const out = new Array<number>(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    count += 1;
    out[i] = last / (1 - Math.pow(weight, count));
  }
  return out;
}

function aligned(series: Series[], options: ChartOptions): uPlot.AlignedData {
  const tables = series.map((s) => {
    const xs = options.x === "time" ? s.times : s.steps;
    const ys = smooth(s.values.map(num), options.smoothing).map((v) =>
      options.log && !(v > 0) ? null : Number.isFinite(v) ? v : null,
    );
    return [xs, ys] as unknown as uPlot.AlignedData;
  });
  if (tables.length === 1) return tables[0];
  return uPlot.join(tables);
}

function color(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function Chart({
  title,
  series,
  options,
  detail,
  height = 220,
}: {
  title: string;
  series: Series[];
  options: ChartOptions;
  detail?: (minStep: number, maxStep: number) => Promise<Series[]>;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [zoomed, setZoomed] = useState<Series[] | null>(null);
  const [busy, setBusy] = useState(false);
  const shown = zoomed ?? series;

  useEffect(() => {
    if (!box.current) return;
    const axis = color("--muted", "#666");
    const grid = color("--grid", "#ddd");
    let pending: number | undefined;
    const made = new uPlot(
      {
        width: Math.max(280, box.current.clientWidth || 480),
        height,
        legend: { show: shown.length > 1 || true },
        scales: {
          x: { time: options.x === "time" },
          y: { distr: options.log ? 3 : 1 },
        },
        axes: [
          { stroke: axis, grid: { stroke: grid } },
          { stroke: axis, grid: { stroke: grid }, size: 60 },
        ],
        cursor: { drag: { x: true, y: false } },
        series: [
          { label: options.x },
          ...shown.map((s, i) => ({
            label: s.label,
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            spanGaps: true,
            points: { show: false },
          })),
        ],
        hooks: {
          setSelect: [
            (u: uPlot) => {
              if (u.select.width < 2 || !detail || options.x !== "step") return;
              const min = Math.floor(u.posToVal(u.select.left, "x"));
              const max = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
              window.clearTimeout(pending);
              pending = window.setTimeout(() => {
                setBusy(true);
                detail(min, max).then(
                  (found) => {
                    setZoomed(found);
                    setBusy(false);
                  },
                  () => setBusy(false),
                );
              }, 0);
            },
          ],
        },
      },
      aligned(shown, options),
      box.current,
    );
    plot.current = made;
    const resize = new ResizeObserver(() => {
      if (box.current) made.setSize({ width: Math.max(280, box.current.clientWidth), height });
    });
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      made.destroy();
      plot.current = null;
    };
  }, [shown, options.x, options.log, options.smoothing, height]);

  const points = series.reduce((n, s) => n + s.steps.length, 0);
  return (
    <figure class="chart">
      <figcaption>
        <span class="chart-title">{title}</span>
        {busy ? <span class="muted"> loading detail…</span> : null}
        {zoomed ? (
          <button type="button" class="small" onClick={() => setZoomed(null)}>
            Reset zoom
          </button>
        ) : null}
      </figcaption>
      <div
        ref={box}
        role="img"
        aria-label={`Chart of metric ${title}${series.length > 1 ? ` for ${series.length} runs` : ""}, ${points} points drawn`}
        class="chart-box"
        data-points={points}
      />
    </figure>
  );
}
