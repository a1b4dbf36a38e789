import { stat } from "node:fs/promises";
import * as v from "valibot";
import { type Actor, createActor, type InspectionEvent } from "xstate";
import {
  type SyncEffect,
  type SyncEvent,
  type SyncRetryPolicy,
  type SyncState,
  syncSessionMachine,
  syncStateSchema,
} from "../machines/sync-session.ts";
import { wireNumberSchema } from "../net/bounds.ts";
import type { TraceRecord } from "../observability/trace.ts";
import {
  abortableSleep,
  commitFile,
  type FetchPiecesOptions,
  fetchPieces,
  type PieceSource,
  type PieceWriter,
  pieceRange,
  readSidecar,
  sidecarPath,
  writeSidecar,
} from "./fetcher.ts";
import { type PieceMap, pieceCount } from "./model.ts";

/** Hashes pieces off the main thread: those received (then writes them), and those found on disk at a resume. */
export interface PieceHasher extends PieceWriter {
  checkPiece(path: string, position: number, length: number, sha256: string): Promise<boolean>;
}

export interface SyncSessionOptions {
  id: string;
  category: string;
  /** The file's path within its category, for operators. */
  path: string;
  sha256: string;
  size: number;
  finalPath: string;
  /** On the same filesystem as `finalPath`, so the commit is one rename. */
  partialPath: string;
  /** Who holds the file now: asked again at every attempt, since holders come and go. */
  sources: () => Promise<{ map: PieceMap; sources: PieceSource[] }>;
  hasher: PieceHasher;
  trace: (record: TraceRecord) => void;
  random?: () => number;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  retry?: Partial<SyncRetryPolicy>;
  fetch?: Pick<
    FetchPiecesOptions,
    | "maxInFlight"
    | "perSourceInFlight"
    | "maxPieceFailures"
    | "penaltyBaseMs"
    | "penaltyMaxMs"
    | "pieceTimeoutMs"
    | "holderWaitMs"
    | "inOrder"
    | "flushEveryBytes"
  >;
}

/** One transfer as operators see it (GET /sync/status, /sync/sessions/:id). */
export const syncSessionStatusSchema = v.object({
  id: v.string(),
  sha256: v.string(),
  category: v.string(),
  path: v.string(),
  state: syncStateSchema,
  bytesDone: wireNumberSchema,
  bytesTotal: wireNumberSchema,
  /** Over the last few seconds of fetching. */
  rateBytesPerSec: wireNumberSchema,
  etaMs: v.nullable(wireNumberSchema),
  attempts: wireNumberSchema,
  maxAttempts: wireNumberSchema,
  /** Sources that delivered at least one piece. */
  sources: v.array(v.string()),
  lastError: v.nullable(v.string()),
  retryAt: v.nullable(wireNumberSchema),
  startedAt: wireNumberSchema,
  updatedAt: wireNumberSchema,
});
export type SyncSessionStatus = v.InferOutput<typeof syncSessionStatusSchema>;

export interface SyncOutcome {
  state: "done" | "given-up" | "cancelled";
  /** The file's piece hashes, once a holder has described it. */
  pieces: string[];
}

/** What a partial file can serve to a swarm: the shape of file-server's ServedFile, less its sha256. */
export interface PartialView {
  absPath: string;
  size: number;
  held: (piece: number) => boolean;
  waitFor: (piece: number, signal: AbortSignal) => Promise<boolean>;
}

const RATE_WINDOW_MS = 10_000;
const MAX_RATE_SAMPLES = 512;
/** Peers waiting for a piece this node has not got yet; more are told "not now" at once. */
const MAX_PIECE_WAITERS = 256;
/** Pieces of a partial file checked at once when resuming. */
const RESUME_CHECKS_IN_FLIGHT = 4;

type SyncActor = Actor<typeof syncSessionMachine>;

interface PieceWaiter {
  piece: number;
  settle: (held: boolean) => void;
}

/**
 * Drives one transfer through the sync machine: performs what it emits (fetch the pieces, verify the
 * whole file, rename it into place, wait out a backoff), reports back what happened, and traces every
 * transition. Verified pieces are recorded in a sidecar as they land, so a restarted node resumes.
 */
export class SyncSession {
  readonly id: string;
  readonly sha256: string;
  readonly category: string;
  readonly path: string;
  /** Settles once the session has ended and its last step has stopped touching the disk. */
  readonly done: Promise<SyncOutcome>;
  private resolveDone: (outcome: SyncOutcome) => void = () => {};
  private readonly actor: SyncActor;
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private state: SyncState = "planned";
  private started = false;
  /** The effect now running; at most one at a time, as the machine is in one state at a time. */
  private effect: Promise<void> = Promise.resolve();
  private map: PieceMap | null = null;
  /** Pieces verified in the partial file, at `pieceBytes` each. */
  private readonly verified = new Set<number>();
  private pieceBytes: number | null = null;
  private bytesDone = 0;
  private readonly used = new Set<string>();
  private samples: Array<{ at: number; bytes: number }> = [];
  private fetchingSince = 0;
  private readonly startedAt: number;
  private updatedAt: number;
  private persisting: Promise<void> | null = null;
  private dirty = false;
  private readonly waiters = new Set<PieceWaiter>();
  /** Pieces loaded from the sidecar have not been hashed again since the restart. */
  private resumedUnchecked = false;
  /** What that check found, for the trace of the attempt that made up for it. */
  private resumeNote: string | null = null;

  constructor(private readonly opts: SyncSessionOptions) {
    this.id = opts.id;
    this.sha256 = opts.sha256;
    this.category = opts.category;
    this.path = opts.path;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.sleep = opts.sleep ?? abortableSleep;
    this.startedAt = this.updatedAt = this.now();
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.actor = createActor(syncSessionMachine, {
      input: opts.retry,
      inspect: (ev: InspectionEvent) => this.onMicrostep(ev),
    });
    this.actor.on("*", (effect: SyncEffect) => this.perform(effect));
    this.actor.subscribe((snapshot) => {
      if (snapshot.status === "done") this.finish();
    });
    this.record(null, "planned", "create", `${opts.category}/${opts.path}: ${opts.size} bytes, ${opts.sha256}`);
    this.actor.start();
  }

  /** Starts the transfer, resuming from the partial file's verified pieces if there are any. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.resume()
      .catch(() => 0)
      .then((resumed) => {
        const total = this.pieceBytes === null ? 0 : pieceCount(this.opts.size, this.pieceBytes);
        this.send({
          type: "start",
          resumedPieces: resumed,
          cause: resumed > 0 ? `resuming: ${resumed} of ${total} pieces verified on disk` : "nothing on disk yet",
        });
      });
  }

  run(): Promise<SyncOutcome> {
    this.start();
    return this.done;
  }

  /** Ends the transfer unless it is committing; the partial file stays, for a later session to resume. */
  cancel(cause = "cancelled"): void {
    this.send({ type: "cancel", cause });
    if (this.state === "cancelled") this.abort.abort(new Error(cause));
  }

  /** This node is going away: the transfer ends here and resumes from the partial file after the restart. */
  stop(): void {
    this.cancel("the node is stopping");
  }

  status(): SyncSessionStatus {
    const snapshot = this.actor.getSnapshot();
    const finished = this.state === "done";
    const rate = this.state === "fetching" ? this.recentRate() : 0;
    const left = this.opts.size - this.bytesDone;
    return {
      id: this.id,
      sha256: this.sha256,
      category: this.category,
      path: this.path,
      state: this.state,
      bytesDone: finished ? this.opts.size : this.bytesDone,
      bytesTotal: this.opts.size,
      rateBytesPerSec: Math.round(rate),
      etaMs: finished ? 0 : rate > 0 ? Math.round((left / rate) * 1000) : null,
      attempts: snapshot.context.attempts,
      maxAttempts: snapshot.context.maxAttempts,
      sources: [...this.used],
      lastError: snapshot.context.error,
      retryAt: snapshot.context.retryAt,
      startedAt: this.startedAt,
      updatedAt: this.updatedAt,
    };
  }

  /** The piece map as this node can serve it to a swarm: the holder's hashes, our verified pieces. */
  pieceMapView(): PieceMap | null {
    if (!this.map || this.isFinal()) return null;
    return { ...this.map, have: [...this.verified].sort((a, b) => a - b) };
  }

  /** The partial file for serving the pieces verified so far; null once the session has ended. */
  partialView(): PartialView | null {
    if (this.isFinal()) return null;
    return {
      absPath: this.opts.partialPath,
      size: this.opts.size,
      held: (piece) => this.verified.has(piece),
      waitFor: (piece, signal) => this.waitFor(piece, signal),
    };
  }

  // ---- the machine's effects ------------------------------------------------------------------

  private perform(effect: SyncEffect): void {
    switch (effect.type) {
      case "fetch":
        this.effect = this.fetch(effect.attempt);
        break;
      case "verify":
        this.effect = this.verify();
        break;
      case "commit":
        this.effect = this.commit();
        break;
      case "wait":
        this.effect = this.waitUntil(effect.until);
        break;
    }
  }

  private async fetch(attempt: number): Promise<void> {
    let sources: PieceSource[] = [];
    try {
      const plan = await this.opts.sources();
      sources = plan.sources;
      const map = this.adopt(plan.map);
      await this.checkResumed(map);
      this.fetchingSince = this.now();
      this.samples = [];
      const result = await fetchPieces({
        ...this.opts.fetch,
        map,
        partialPath: this.opts.partialPath,
        writer: this.opts.hasher,
        done: this.verified,
        sources,
        signal: this.abort.signal,
        onPiece: (index, bytes, sourceId) => this.onPiece(index, bytes, sourceId),
        random: this.random,
        now: this.now,
        sleep: this.sleep,
      });
      const from = Object.entries(result.bySource).map(([id, n]) => `${n} from ${id}`);
      const notes = [
        from.length
          ? `this attempt fetched ${from.join(", ")}${result.failures ? `, after ${result.failures} rejected` : ""}`
          : "",
        this.resumeNote ?? "",
      ].filter(Boolean);
      this.resumeNote = null;
      this.send({
        type: "fetched",
        cause: `all ${map.pieces.length} pieces verified${notes.length ? `; ${notes.join("; ")}` : ""}`,
      });
    } catch (e) {
      this.fail(`attempt ${attempt}`, e);
    } finally {
      for (const s of sources) s.stop?.();
    }
  }

  /**
   * Every piece was checked against its SHA-256 as it landed (or, resumed, when the attempt began), and
   * the piece hashes are the ones the holder indexed together with the file's SHA-256: the whole file is
   * verified once every piece is. What is left is to confirm that none is missing.
   */
  private async verify(): Promise<void> {
    const total = this.map?.pieces.length ?? 0;
    if (this.map === null || this.verified.size !== total) {
      this.fail("verifying", new Error(`${this.verified.size} of ${total} pieces verified`));
      return;
    }
    this.send({ type: "verified", cause: `each of the ${total} pieces matched its SHA-256 in the holder's piece map` });
  }

  private async commit(): Promise<void> {
    try {
      await commitFile(this.opts.partialPath, this.opts.finalPath);
      this.send({ type: "committed", cause: `renamed into place at ${this.opts.finalPath}` });
    } catch (e) {
      this.fail("committing", e);
    }
  }

  private async waitUntil(until: number): Promise<void> {
    const signal = this.abort.signal;
    const began = this.now();
    while (this.now() < until && !signal.aborted) await this.sleep(until - this.now(), signal);
    this.send({ type: "retry-due", now: this.now(), cause: `waited out ${Math.max(0, until - began)} ms of backoff` });
  }

  private fail(step: string, e: unknown): void {
    if (this.abort.signal.aborted) return;
    const error = `${step}: ${e instanceof Error ? e.message : String(e)}`;
    this.send({ type: "fail", error, now: this.now(), random: this.random(), cause: error });
  }

  // ---- pieces on disk ---------------------------------------------------------------------------

  /**
   * Loads the pieces a previous run verified, if the sidecar and the partial file are both there. They are
   * checked against their hashes again once the piece map is known (`checkResumed`).
   */
  private async resume(): Promise<number> {
    const sidecar = await readSidecar(sidecarPath(this.opts.partialPath));
    if (!sidecar || sidecar.sha256 !== this.sha256 || sidecar.size !== this.opts.size) return 0;
    if (!(await stat(this.opts.partialPath).catch(() => null))) return 0;
    this.pieceBytes = sidecar.pieceBytes;
    for (const i of sidecar.done) this.addVerified(i);
    this.resumedUnchecked = this.verified.size > 0;
    return this.verified.size;
  }

  /** Takes this attempt's piece map; pieces verified at another piece size no longer line up and are dropped. */
  private adopt(map: PieceMap): PieceMap {
    if (map.sha256 !== this.sha256 || map.size !== this.opts.size)
      throw new Error(`the holder describes another file: ${map.size} bytes, ${map.sha256}`);
    if (map.pieceBytes !== this.pieceBytes) {
      this.forgetPieces();
      this.pieceBytes = map.pieceBytes;
    }
    this.map = map;
    return map;
  }

  private addVerified(index: number): number {
    if (this.pieceBytes === null || this.verified.has(index)) return 0;
    const [start, end] = pieceRange({ size: this.opts.size, pieceBytes: this.pieceBytes }, index);
    this.verified.add(index);
    this.bytesDone += end - start;
    return end - start;
  }

  /**
   * Hashes again, off the main thread, the pieces the sidecar says were verified before a restart: after
   * a power loss the sidecar may name pieces the disk never kept. Each one that fails is fetched again.
   * Only the first attempt after a restart has such pieces.
   */
  private async checkResumed(map: PieceMap): Promise<void> {
    if (!this.resumedUnchecked) return;
    this.resumedUnchecked = false;
    const claimed = [...this.verified];
    const bad: number[] = [];
    for (let at = 0; at < claimed.length; at += RESUME_CHECKS_IN_FLIGHT) {
      const batch = claimed.slice(at, at + RESUME_CHECKS_IN_FLIGHT);
      const ok = await Promise.all(
        batch.map((i) => {
          const [start, end] = pieceRange(map, i);
          return this.opts.hasher.checkPiece(this.opts.partialPath, start, end - start, map.pieces[i] as string);
        }),
      );
      batch.forEach((i, k) => {
        if (!ok[k]) bad.push(i);
      });
    }
    for (const i of bad) this.dropVerified(i);
    if (bad.length > 0) {
      this.resumeNote = `${bad.length} of the ${claimed.length} resumed pieces failed their check and were fetched again`;
      await this.persist();
    }
  }

  private dropVerified(index: number): void {
    if (this.pieceBytes === null || !this.verified.delete(index)) return;
    const [start, end] = pieceRange({ size: this.opts.size, pieceBytes: this.pieceBytes }, index);
    this.bytesDone -= end - start;
  }

  private forgetPieces(): void {
    this.verified.clear();
    this.bytesDone = 0;
  }

  private onPiece(index: number, bytes: number, sourceId: string): Promise<void> {
    this.addVerified(index);
    this.used.add(sourceId);
    this.updatedAt = this.now();
    this.samples.push({ at: this.updatedAt, bytes });
    if (this.samples.length > MAX_RATE_SAMPLES) this.samples.shift();
    for (const w of this.waiters) if (w.piece === index) w.settle(true);
    return this.persist();
  }

  /** Writes the sidecar; calls while a write is under way are folded into one more write after it. */
  private persist(): Promise<void> {
    this.dirty = true;
    this.persisting ??= (async () => {
      try {
        while (this.dirty) {
          this.dirty = false;
          await writeSidecar(sidecarPath(this.opts.partialPath), {
            sha256: this.sha256,
            size: this.opts.size,
            pieceBytes: this.pieceBytes ?? 0,
            done: [...this.verified],
          });
        }
      } finally {
        this.persisting = null;
      }
    })();
    return this.persisting;
  }

  private waitFor(piece: number, signal: AbortSignal): Promise<boolean> {
    if (this.verified.has(piece)) return Promise.resolve(true);
    if (this.isFinal() || signal.aborted || this.waiters.size >= MAX_PIECE_WAITERS) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: PieceWaiter = {
        piece,
        settle: (held) => {
          this.waiters.delete(waiter);
          signal.removeEventListener("abort", onAbort);
          resolve(held);
        },
      };
      const onAbort = () => waiter.settle(false);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  private recentRate(): number {
    const t = this.now();
    const from = Math.max(t - RATE_WINDOW_MS, this.fetchingSince);
    while (this.samples[0] && this.samples[0].at < from) this.samples.shift();
    const span = t - from;
    if (span <= 0) return 0;
    return (this.samples.reduce((sum, s) => sum + s.bytes, 0) * 1000) / span;
  }

  // ---- the machine --------------------------------------------------------------------------------

  private send(event: SyncEvent): void {
    if (this.isFinal()) return;
    this.actor.send(event);
  }

  private isFinal(): boolean {
    return this.actor.getSnapshot().status !== "active";
  }

  private onMicrostep(ev: InspectionEvent): void {
    if (ev.type !== "@xstate.microstep" || ev.rootId !== ev.actorRef.sessionId) return;
    const snapshot = ev.snapshot as ReturnType<SyncActor["getSnapshot"]>;
    const to = snapshot.value as SyncState;
    if (to === this.state) return;
    const event = ev.event as SyncEvent;
    const { attempts, maxAttempts, error, retryAt } = snapshot.context;
    const cause =
      to === "retry-wait"
        ? `attempt ${attempts} of ${maxAttempts} failed; the next in ${Math.max(0, (retryAt ?? 0) - this.now())} ms`
        : to === "given-up"
          ? `all ${maxAttempts} attempts failed; the last: ${error}`
          : event.cause;
    this.record(this.state, to, event.type, cause);
    this.state = to;
    this.updatedAt = this.now();
  }

  private record(from: SyncState | null, to: SyncState, event: string, cause: string): void {
    this.opts.trace({ machine: "sync", instance: this.id, from, to, event, cause, at: this.now() });
  }

  private finish(): void {
    for (const w of this.waiters) w.settle(false);
    const state = this.state as SyncOutcome["state"];
    const outcome: SyncOutcome = { state, pieces: this.map?.pieces ?? [] };
    void this.effect.then(() => this.resolveDone(outcome));
  }
}
