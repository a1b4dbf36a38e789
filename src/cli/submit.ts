import { CallError, call } from "../net/client.ts";
import type { RouteSpec } from "../net/route-table.ts";
import type { Target } from "./target.ts";

const REQUEST_TIMEOUT_MS = 5_000;
const BACKOFF_BASE_MS = 200;
const BACKOFF_MAX_MS = 5_000;
const MAX_IMMEDIATE_REDIRECTS = 3;

/**
 * Sends a submission until it gets a definite answer, for at most `retryForMs`. An answer that never
 * came (a timeout, a dropped connection), a 503 write_failed (the outcome is unknown: it may still be
 * applied) and a 421 from a node that knows no leader are sent again unchanged, after a backoff with
 * full jitter; a 421 that names the leader is sent there. Resending is safe only because the body
 * names its items' ids: the queue adds an id once and answers a repeat with the item it holds.
 */
export async function submit<Spec extends RouteSpec>(
  target: Target,
  spec: Spec,
  body: unknown,
  retryForMs: number,
): Promise<unknown> {
  const deadline = Date.now() + retryForMs;
  const credentials = { kind: "operator", token: target.token } as const;
  let url = target.url;
  let redirects = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await call(url, spec, credentials, { body: body as never, timeoutMs: REQUEST_TIMEOUT_MS });
    } catch (e) {
      const leader = leaderAddress(e);
      if (leader) url = `http://${leader}`;
      // A follower's pointer to the leader is followed at once, a few times in a row (hints go stale in an election).
      if (leader && ++redirects <= MAX_IMMEDIATE_REDIRECTS) continue;
      if (!leader) redirects = 0;
      const delayMs = Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
      if (!(leader || outcomeUnknown(e)) || Date.now() + delayMs > deadline) throw e;
      console.error(`retrying with the same id(s): ${(e as Error).message}`);
      await Bun.sleep(delayMs);
    }
  }
}

function leaderAddress(e: unknown): string | null {
  if (!(e instanceof CallError) || e.status !== 421) return null;
  return (e.body as { leader?: { address?: string | null } | null } | undefined)?.leader?.address ?? null;
}

/** Failures after which the submission may or may not have been applied, or that a moment may cure. */
function outcomeUnknown(e: unknown): boolean {
  if (!(e instanceof CallError)) return false;
  return e.kind === "timeout" || e.kind === "unreachable" || e.status === 503 || e.status === 421;
}
