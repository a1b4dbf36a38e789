import { describe, expect, test } from "bun:test";
import { createActor } from "xstate";
import {
  type SyncEffect,
  type SyncEvent,
  type SyncRetryPolicy,
  syncRetryDelayMs,
  syncSessionMachine,
} from "../../src/machines/sync-session.ts";

/** A running machine and everything it asked the runtime to do. */
function drive(policy?: Partial<SyncRetryPolicy>) {
  const actor = createActor(syncSessionMachine, { input: policy });
  const effects: SyncEffect[] = [];
  actor.on("*", (e: SyncEffect) => effects.push(e));
  actor.start();
  const send = (...events: SyncEvent[]) => {
    for (const e of events) actor.send(e);
    return actor.getSnapshot();
  };
  return { actor, effects, send };
}

const start = (resumedPieces = 0): SyncEvent => ({ type: "start", resumedPieces, cause: "test" });
const fetched: SyncEvent = { type: "fetched", cause: "test" };
const verified: SyncEvent = { type: "verified", cause: "test" };
const committed: SyncEvent = { type: "committed", cause: "test" };
const fail = (now: number, random = 0.5, error = "boom"): SyncEvent => ({
  type: "fail",
  error,
  now,
  random,
  cause: error,
});
const retryDue = (now: number): SyncEvent => ({ type: "retry-due", now, cause: "test" });
const cancel: SyncEvent = { type: "cancel", cause: "operator" };

describe("sync session machine", () => {
  test("happy path: planned → fetching → verifying → committing → done, one effect per step", () => {
    const { send, effects } = drive();
    expect(send().value).toBe("planned");
    expect(effects).toEqual([]);
    const s = send(start(), fetched, verified, committed);
    expect(s.value).toBe("done");
    expect(s.status).toBe("done");
    expect(s.context.attempts).toBe(1);
    expect(s.context.error).toBeNull();
    expect(effects).toEqual([{ type: "fetch", attempt: 1 }, { type: "verify" }, { type: "commit" }]);
  });

  test("resume: start carries the pieces already verified on disk and goes straight to fetching", () => {
    const { send } = drive();
    const s = send(start(7));
    expect(s.value).toBe("fetching");
    expect(s.context.resumedPieces).toBe(7);
  });

  test("a failure waits out its backoff in retry-wait, then fetches again", () => {
    const { send, effects } = drive({ baseDelayMs: 100, maxDelayMs: 10_000 });
    let s = send(start(), fail(1_000, 0.5));
    expect(s.value).toBe("retry-wait");
    const retryAt = 1_000 + syncRetryDelayMs(1, 0.5, 100, 10_000);
    expect(s.context.retryAt).toBe(retryAt);
    expect(s.context.error).toBe("boom");
    expect(effects.at(-1)).toEqual({ type: "wait", until: retryAt });
    // Too early changes nothing.
    expect(send(retryDue(retryAt - 1)).value).toBe("retry-wait");
    s = send(retryDue(retryAt));
    expect(s.value).toBe("fetching");
    expect(s.context.attempts).toBe(2);
    expect(s.context.retryAt).toBeNull();
    expect(effects.at(-1)).toEqual({ type: "fetch", attempt: 2 });
  });

  test("verifying and committing failures are retried too", () => {
    const { send } = drive({ baseDelayMs: 10 });
    expect(send(start(), fetched, fail(0)).value).toBe("retry-wait");
    expect(send(retryDue(1_000), fetched, verified, fail(1_000)).value).toBe("retry-wait");
    expect(send(retryDue(2_000), fetched, verified, committed).value).toBe("done");
  });

  test("once the attempts are spent a failure ends in given-up with the last error", () => {
    const { send, effects } = drive({ maxAttempts: 2, baseDelayMs: 10 });
    send(start(), fail(0, 0.5, "first"), retryDue(1_000));
    const s = send(fail(2_000, 0.5, "second"));
    expect(s.value).toBe("given-up");
    expect(s.status).toBe("done");
    expect(s.context.attempts).toBe(2);
    expect(s.context.error).toBe("second");
    expect(s.context.retryAt).toBeNull();
    expect(effects.filter((e) => e.type === "fetch")).toHaveLength(2);
    expect(effects.filter((e) => e.type === "wait")).toHaveLength(1);
  });

  test("cancel ends the session from planned, fetching, verifying and retry-wait", () => {
    const paths: SyncEvent[][] = [[], [start()], [start(), fetched], [start(), fail(0)]];
    for (const before of paths) {
      const { send } = drive();
      const s = send(...before, cancel);
      expect(s.value).toBe("cancelled");
      expect(s.status).toBe("done");
    }
  });

  test("committing is not cancellable: the rename may already have landed", () => {
    const { send } = drive();
    expect(send(start(), fetched, verified, cancel).value).toBe("committing");
    expect(send(committed).value).toBe("done");
  });

  test("events that do not apply in a state change nothing", () => {
    const { send } = drive();
    expect(send(fetched, verified, committed, retryDue(0)).value).toBe("planned");
    expect(send(start(), verified, committed, retryDue(0)).value).toBe("fetching");
  });
});

describe("syncRetryDelayMs", () => {
  const draws = [0, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999999];

  test("jitter stays within [cap/2, cap] and the cap doubles per attempt up to the maximum", () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const cap = Math.min(60_000, 1_000 * 2 ** (attempt - 1));
      for (const r of draws) {
        const d = syncRetryDelayMs(attempt, r, 1_000, 60_000);
        expect(d).toBeGreaterThanOrEqual(Math.floor(cap / 2));
        expect(d).toBeLessThanOrEqual(cap);
      }
    }
  });

  test("the delay grows: the least wait of an attempt is at least the most of the one before", () => {
    for (let attempt = 1; attempt < 6; attempt++)
      expect(syncRetryDelayMs(attempt + 1, 0, 1_000, 60_000)).toBeGreaterThanOrEqual(
        syncRetryDelayMs(attempt, 1, 1_000, 60_000),
      );
    expect(syncRetryDelayMs(5, 0, 1_000, 60_000)).toBeGreaterThan(syncRetryDelayMs(1, 1, 1_000, 60_000));
  });

  test("different draws give different delays, and out-of-range draws are clamped", () => {
    expect(new Set(draws.map((r) => syncRetryDelayMs(3, r, 1_000, 60_000))).size).toBeGreaterThan(3);
    expect(syncRetryDelayMs(1, -5, 1_000, 60_000)).toBe(500);
    expect(syncRetryDelayMs(1, 7, 1_000, 60_000)).toBe(1_000);
    expect(syncRetryDelayMs(50, 1, 1_000, 60_000)).toBe(60_000);
  });
});
