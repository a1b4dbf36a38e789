import * as v from "valibot";

/**
 * Numbers that arrive from peers or from disk. Every counter (term, index, incarnation, sequence) is a
 * safe integer with room for one more, so `n + 1` is exact: at 1e308 or 2^53 + 1, `n + 1 === n`, and a
 * Raft term stuck there wins no election again.
 */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER - 1;

/** An integer in [min, max] (both safe); a 422 says the range. */
export const intIn = (min: number, max: number) => {
  const expected = `an integer from ${min} to ${max}`;
  return v.pipe(v.number(), v.safeInteger(expected), v.minValue(min, expected), v.maxValue(max, expected));
};

/** A term, log index, incarnation or sequence number. */
export const counterSchema = intIn(0, MAX_COUNTER);

/** A byte count or size (files, memory, disks): a non-negative safe integer. */
export const bytesSchema = intIn(0, Number.MAX_SAFE_INTEGER);

/** A finite number in [min, max] (fractions allowed: loads, percentages, gigabytes). */
export const finiteIn = (min: number, max: number) => {
  const expected = `a number from ${min} to ${max}`;
  return v.pipe(v.number(), v.finite(expected), v.minValue(min, expected), v.maxValue(max, expected));
};

/** A time in milliseconds (epoch or monotonic): finite, non-negative, at most a safe integer. */
export const timeMsSchema = finiteIn(0, Number.MAX_SAFE_INTEGER);

/** Any other number an answer or a stored row carries (ratings, rates, counts): finite, within the safe range. */
export const wireNumberSchema = finiteIn(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

export function isCounter(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= MAX_COUNTER;
}
