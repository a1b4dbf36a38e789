import * as v from "valibot";

/** The longest duration any setting takes: a year. */
const MAX_DURATION_MS = 365 * 86_400_000;

/** "90s", "5m", "1h", "2d", "250ms", or a number of milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === "number") return input;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(input.trim());
  if (!m) return Number.NaN;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Math.round(Number(m[1]) * unit);
}

export const durationSchema = v.pipe(
  v.union([v.number(), v.string()]),
  v.transform(parseDuration),
  v.check(
    (ms) => Number.isFinite(ms) && ms > 0 && ms <= MAX_DURATION_MS,
    'a duration such as "90s", "5m" or "1h" (at most a year)',
  ),
);
