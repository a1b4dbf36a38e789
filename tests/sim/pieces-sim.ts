import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchPieces, type PieceSource, SourceBusy } from "../../src/sync/fetcher.ts";
import type { PieceMap } from "../../src/sync/model.ts";
import { choosePiece } from "../../src/sync/piece-choice.ts";
import { EventQueue } from "./event-queue.ts";
import { seededRandom, shuffled } from "./rng.ts";

/**
 * Piece scheduling in a seeded swarm: one origin and several peers fetch the same file, each peer running the real
 * `fetchPieces` (so the real `choosePiece` and `nextReturn`) on a virtual clock, with in-memory sources and writer.
 * A peer serves what it has verified, so what its sources hold changes as the swarm fills in. For a while sources
 * fail, send corrupt pieces, hang past the piece deadline, say they are busy, and die (a dead peer's own fetch is
 * stopped, and starts again from what it verified when it comes back); then every node is up and healthy.
 * Checked at every request: the source holds the piece, the fetcher does not have it nor has it in flight, both
 * in-flight bounds hold, and a source benched after a failure is not asked before its bench can have ended. At the
 * end every peer has the whole file within a bounded time and number of events, and once peers hold pieces they,
 * not the origin, carry most of the load. `PIECES_SEED=<n>` replays one seed.
 */

const MAX_IN_FLIGHT = 4;
const PER_SOURCE = 2;
const PENALTY_BASE_MS = 100;
const PENALTY_MAX_MS = 2_000;
const PIECE_TIMEOUT_MS = 1_000;
const PIECE_BYTES = 8;
const ORIGIN = "origin";
const FAULTS_MS = 4_000;
/** Once every node is back and healthy, every peer has the file within this long. */
const COMPLETE_WITHIN_MS = 20_000;
/** More events than this at one virtual instant, or requests and waits within one event, is a busy loop. */
const EVENTS_PER_INSTANT = 5_000;
const MAX_EVENTS = 200_000;
/** In a swarm of at least this many peers the origin serves under this share of the pieces. */
const SWARM_PEERS = 5;
const SWARM_ORIGIN_SHARE = 0.6;

type Choose = typeof choosePiece;

/** Runs after every promise the last event settled has run its continuations (no real I/O is pending then). */
const quiesce = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Node {
  id: string;
  up: boolean;
  /** Pieces it has verified (its sidecar): what it serves. The origin holds all. */
  held: Set<number>;
  uploads: number;
  uploadSlots: number;
  /** Fault rates while faults last. */
  failRate: number;
  hangRate: number;
  corruptRate: number;
}

/** One `fetchPieces` call of one peer; a peer that dies loses it and starts a new one when it comes back. */
interface Attempt {
  peer: Node;
  stop: AbortController;
  stopped: boolean;
  /** Requests asked and not yet settled, by piece, and their source. */
  asked: Map<number, string>;
  /** Pieces from the request until their verdict (fetched and checked, or failed), and their source. */
  open: Map<number, string>;
  /** Per source: failures in a row (as the fetcher counts them) and the earliest its bench can end. */
  standing: Map<string, { streak: number; benchedUntil: number }>;
  /** Called at its first request or wait: its partial file is open by then. */
  first: () => void;
}

export interface PiecesOutcome {
  violations: string[];
  /** Pieces delivered by the origin and by peers, over the whole run. */
  fromOrigin: number;
  fromPeers: number;
  /** Virtual ms from the end of the faults until the last peer had the file. */
  completedAfterMs: number;
  events: number;
  peers: number;
  /** How often each fault struck, so a world that stopped injecting one shows. */
  faults: Record<"timeout" | "failed" | "corrupt" | "busy" | "refused" | "restarted", number>;
}

export async function swarm(seed: number, choose: Choose = choosePiece): Promise<PiecesOutcome> {
  const random = seededRandom(seed);
  const pieces = 12 + Math.floor(random() * 40);
  const size = pieces * PIECE_BYTES - Math.floor(random() * PIECE_BYTES);
  const map: PieceMap = {
    sha256: "0".repeat(64),
    size,
    pieceBytes: PIECE_BYTES,
    pieces: Array.from({ length: pieces }, (_, i) => i.toString(16).padStart(64, "0")),
  };
  const node = (id: string, held: Set<number>, uploadSlots: number): Node => ({
    id,
    up: true,
    held,
    uploads: 0,
    uploadSlots,
    failRate: random() * 0.2,
    hangRate: random() * 0.1,
    corruptRate: random() < 0.3 ? random() * 0.2 : 0,
  });
  const origin = node(ORIGIN, new Set(Array.from({ length: pieces }, (_, i) => i)), 2 + Math.floor(random() * 3));
  const peers = Array.from({ length: 3 + Math.floor(random() * 5) }, (_, i) => {
    // Some peers resume with part of the file already verified.
    const held = new Set<number>();
    const resumes = random() < 0.3;
    for (let p = 0; resumes && p < pieces; p++) if (random() < 0.3) held.add(p);
    return node(`p${i + 1}`, held, 1 + Math.floor(random() * 3));
  });
  const nodes = [...peers, origin];
  // Peers list each other in a seeded order, the origin last; a few were planned with peers only (the first
  // always has the origin, so the file reaches the swarm).
  const sourcesOf = new Map(
    peers.map((p, i) => {
      const others = shuffled(
        peers.filter((q) => q !== p),
        random,
      );
      return [p.id, i === 0 || random() < 0.8 ? [...others, origin] : others] as const;
    }),
  );

  const violations: string[] = [];
  const struck = { timeout: 0, failed: 0, corrupt: 0, busy: 0, refused: 0, restarted: 0 };
  const queue = new EventQueue();
  let order = 0;
  let now = 0;
  let faults = true;
  const at = (time: number, run: () => void) => queue.push({ at: time, order: order++, run });
  const violate = (message: string) => violations.push(`at ${now.toFixed(1)} ms: ${message}`);
  const attempts = new Map<string, Attempt>();
  const running = new Set<Promise<unknown>>();

  const standing = (a: Attempt, source: string) => {
    const s = a.standing.get(source) ?? { streak: 0, benchedUntil: 0 };
    a.standing.set(source, s);
    return s;
  };
  // The fetcher benches a failing source for base·2^(streak−1), capped, times a jitter of at least a half.
  const failed = (a: Attempt, source: string) => {
    const s = standing(a, source);
    s.streak++;
    s.benchedUntil = now + Math.min(PENALTY_MAX_MS, PENALTY_BASE_MS * 2 ** (s.streak - 1)) * 0.5;
  };

  /** Requests and waits since the last event: a fetch that loops without waiting for anything runs this up. */
  let calls = 0;
  const spinning = (a: Attempt) => {
    a.first();
    if (++calls === EVENTS_PER_INSTANT)
      violate(`${a.peer.id}'s fetch made ${calls} requests and waits while no time passed (busy loop)`);
    return calls >= EVENTS_PER_INSTANT;
  };

  /** What `peer`'s attempt sees as `server`: `has` follows what the server has verified, dead or alive. */
  const sourceFor = (a: Attempt, server: Node): PieceSource => ({
    id: server.id,
    ...(server === origin ? {} : { has: (piece: number) => server.held.has(piece) }),
    fetchRange: (start, end, signal, into) => {
      if (spinning(a)) return Promise.reject(new Error("busy loop"));
      const piece = start / PIECE_BYTES;
      const who = `${a.peer.id} asked ${server.id} for piece ${piece}`;
      if (a.stopped) violate(`${who} after its fetch was stopped`);
      if (!server.held.has(piece)) violate(`${who}, which it does not hold`);
      if (a.peer.held.has(piece)) violate(`${who}, which it has already`);
      if (a.open.has(piece)) violate(`${who} while that piece is in flight`);
      if (a.open.size >= MAX_IN_FLIGHT) violate(`${who} with ${a.open.size} pieces in flight`);
      const toServer = [...a.asked.values()].filter((s) => s === server.id).length;
      if (toServer >= PER_SOURCE) violate(`${who} with ${toServer} requests to it in flight`);
      const benched = standing(a, server.id).benchedUntil;
      if (now < benched) violate(`${who} while it is benched until ${benched.toFixed(1)} ms`);
      a.asked.set(piece, server.id);
      a.open.set(piece, server.id);
      return new Promise<Uint8Array>((resolve, reject) => {
        let settled = false;
        const settle = (then: () => void) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", aborted);
          a.asked.delete(piece);
          then();
        };
        const fail = (e: Error, fault: keyof typeof struck | null) =>
          settle(() => {
            a.open.delete(piece);
            if (fault) {
              failed(a, server.id);
              struck[fault]++;
            }
            reject(e);
          });
        // Stopped with the whole attempt, or the piece's deadline passed (the fetcher's own timer).
        const aborted = () => fail(new Error("aborted"), a.stopped ? null : "timeout");
        signal.addEventListener("abort", aborted, { once: true });
        const delay = 1 + random() * 60;
        if (!server.up) return at(now + delay / 4, () => fail(new Error("connection refused"), "refused"));
        if (faults && random() < server.hangRate) return;
        if (server.uploads >= server.uploadSlots) {
          const retryAfterMs = 20 + random() * 100;
          return at(now + delay / 4, () =>
            settle(() => {
              a.open.delete(piece);
              const s = standing(a, server.id);
              s.benchedUntil = now + retryAfterMs * 0.5;
              struck.busy++;
              reject(new SourceBusy("all upload slots taken", retryAfterMs));
            }),
          );
        }
        server.uploads++;
        at(now + delay, () => {
          server.uploads--;
          if (!server.up) return fail(new Error("connection reset"), "failed");
          if (faults && random() < server.failRate) return fail(new Error("stream ended early"), "failed");
          const corrupt = faults && random() < server.corruptRate;
          const out = into.subarray(0, end - start);
          out.fill(piece & 0xff);
          if (corrupt) {
            out[0] = (out[0] as number) ^ 0xff;
            struck.corrupt++;
          }
          settle(() => resolve(out));
        });
      });
    },
  });

  const start = async (peer: Node) => {
    calls = 0;
    let first = () => {};
    const asked = new Promise<void>((resolve) => {
      first = resolve;
    });
    const a: Attempt = {
      peer,
      stop: new AbortController(),
      stopped: false,
      asked: new Map(),
      open: new Map(),
      standing: new Map(),
      first,
    };
    attempts.set(peer.id, a);
    const fetching = fetchPieces({
      map,
      partialPath: join(dir, peer.id),
      done: new Set(peer.held),
      sources: (sourcesOf.get(peer.id) ?? []).map((s) => sourceFor(a, s)),
      maxInFlight: MAX_IN_FLIGHT,
      perSourceInFlight: PER_SOURCE,
      // The whole attempt fails only when a piece has no source for very long; the session's retries are
      // not what this world checks.
      maxPieceFailures: 1_000,
      holderWaitMs: 60_000,
      penaltyBaseMs: PENALTY_BASE_MS,
      penaltyMaxMs: PENALTY_MAX_MS,
      pieceTimeoutMs: PIECE_TIMEOUT_MS,
      flushEveryBytes: 0,
      signal: a.stop.signal,
      random,
      now: () => now,
      choose,
      sleep: (ms, signal) => {
        if (spinning(a)) return Promise.reject(new Error("busy loop"));
        return new Promise((resolve) => {
          if (signal.aborted) return resolve();
          let done = false;
          const wake = () => {
            if (done) return;
            done = true;
            signal.removeEventListener("abort", wake);
            resolve();
          };
          signal.addEventListener("abort", wake, { once: true });
          at(now + Math.max(0, ms), wake);
        });
      },
      writer: {
        writePiece: (_path, position, bytes) =>
          new Promise((resolve) => {
            const piece = position / PIECE_BYTES;
            // Hashing takes a moment off the main thread; the piece stays in flight meanwhile.
            at(now + random() * 3, () => {
              const source = a.open.get(piece) ?? "";
              a.open.delete(piece);
              const good = bytes.every((b) => b === (piece & 0xff));
              if (good) standing(a, source).streak = 0;
              else failed(a, source);
              resolve({ actual: good ? null : "f".repeat(64), buffer: bytes.buffer as ArrayBuffer });
            });
          }),
      },
      onPiece: (index, _bytes, sourceId) => {
        if (a.stopped) return;
        peer.held.add(index);
        if (sourceId === ORIGIN) fromOrigin++;
        else fromPeers++;
      },
    }).catch((e: Error) => {
      if (!a.stopped) violate(`${peer.id}'s fetch failed: ${e.message}`);
    });
    running.add(fetching);
    // Its partial file is opened for real: wait for that before the world moves on, so runs replay exactly. One
    // that then neither asks nor waits for anything is stuck (the real-time limit is only ever reached then).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<true>((resolve) => {
      timer = setTimeout(() => resolve(true), 20_000);
    });
    if ((await Promise.race([asked, fetching, stuck])) === true)
      violate(`${peer.id}'s fetch started and waits on nothing`);
    clearTimeout(timer);
    await quiesce();
  };
  let fromOrigin = 0;
  let fromPeers = 0;

  const dir = mkdtempSync(join(tmpdir(), "pieces-sim-"));
  try {
    for (const p of peers) await start(p);
    const restarts: Node[] = [];
    const tick = () => {
      if (!faults) return;
      const n = nodes[Math.floor(random() * nodes.length)] as Node;
      if (random() < 0.05) {
        if (n.up) {
          n.up = false;
          const a = attempts.get(n.id);
          if (a) {
            a.stopped = true;
            a.stop.abort();
          }
          at(now + 100 + random() * 1_500, () => {
            n.up = true;
            if (n === origin) return;
            restarts.push(n);
            struck.restarted++;
          });
        }
      }
      at(now + 50, tick);
    };
    at(0, tick);
    at(FAULTS_MS, () => {
      faults = false;
    });
    const complete = () => !faults && peers.every((p) => p.up && p.held.size === pieces);
    let events = 0;
    let instant = -1;
    let atInstant = 0;
    let completedAt = Number.POSITIVE_INFINITY;
    while (violations.length === 0) {
      if (complete()) {
        completedAt = now;
        break;
      }
      const next = queue.pop();
      if (!next) {
        violate("nothing left to happen, and peers still lack pieces (deadlock)");
        break;
      }
      now = next.at;
      atInstant = now === instant ? atInstant + 1 : 0;
      instant = now;
      if (atInstant > EVENTS_PER_INSTANT) violate(`more than ${EVENTS_PER_INSTANT} events at one instant (busy loop)`);
      if (++events > MAX_EVENTS || now > FAULTS_MS + COMPLETE_WITHIN_MS) {
        const lacking = peers.filter((p) => p.held.size < pieces).map((p) => `${p.id} ${p.held.size}/${pieces}`);
        violate(`not complete after ${events} events: ${lacking.join(", ")} (starved)`);
        break;
      }
      calls = 0;
      next.run();
      for (const n of restarts.splice(0)) await start(n);
      await quiesce();
    }
    const share = fromOrigin / Math.max(1, fromOrigin + fromPeers);
    if (violations.length === 0 && peers.length >= SWARM_PEERS && share >= SWARM_ORIGIN_SHARE)
      violate(`the origin served ${fromOrigin} of ${fromOrigin + fromPeers} pieces to ${peers.length} peers`);
    for (const a of attempts.values()) {
      a.stopped = true;
      a.stop.abort();
    }
    // Stopped attempts still wait for the pieces being checked: let the clock run until they are over.
    let over = false;
    void Promise.all(running).then(() => {
      over = true;
    });
    await quiesce();
    for (let next = queue.pop(); !over && next; next = queue.pop()) {
      if (++events > MAX_EVENTS) {
        violate("stopped fetches went on asking and waiting");
        break;
      }
      now = next.at;
      calls = 0;
      next.run();
      await quiesce();
    }
    return {
      violations,
      fromOrigin,
      fromPeers,
      completedAfterMs: completedAt - FAULTS_MS,
      events,
      peers: peers.length,
      faults: struck,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
