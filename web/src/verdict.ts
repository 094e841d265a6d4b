// A run's reproduction verdict from its verification history, as the server derives it
// for the grid (the newest reproduction; comparisons against another run do not count).
import { Verdict } from "./api";

export function entryVerdict(entry: Record<string, unknown>, count = 1): Verdict {
  return {
    verdict: String(entry.verdict),
    within_noise: Boolean(entry.within_noise),
    time: Number(entry.time),
    count,
  };
}

export function verdictOf(history: unknown): Verdict | null {
  if (!Array.isArray(history)) return null;
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i] as Record<string, unknown>;
    if ((entry.kind ?? "reproduction") === "reproduction") return entryVerdict(entry, history.length);
  }
  return null;
}
