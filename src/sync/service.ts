import { mkdirSync } from "node:fs";
import { rm, rmdir, utimes } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as v from "valibot";
import type { DataCategory, SyncLimits } from "../config/load.ts";
import type { Timing } from "../config/timing.ts";
import type { PeerTransport } from "../net/peer-transport.ts";
import { ROUTES } from "../net/route-table.ts";
import { GuardedWrite } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import type { TraceRecord } from "../observability/trace.ts";
import { diskGate } from "./disk-gate.ts";
import type { ServedFile } from "./file-server.ts";
import type { Hasher } from "./hasher.ts";
import type { ManifestIndex } from "./manifest.ts";
import {
  type Manifest,
  type ManifestDigest,
  manifestSchema,
  PIECE_BYTES,
  type PieceMap,
  type Retired,
} from "./model.ts";
import { resolveInRoot } from "./paths.ts";
import { fetchPieceMap, type Holder, PeerSource } from "./peer-sources.ts";
import { type FirstSeen, planTransfers, type Want, wantedFiles } from "./plan.ts";
import { holdsCategory, originShare } from "./policy.ts";
import { isRetired, mergeRetired, retiredFingerprint } from "./retired.ts";
import { SyncSession, type SyncSessionStatus } from "./session.ts";
import { RateLimiter, Slots } from "./throttle.ts";

/** What a node gossips about its data: a digest per category, and the files it is fetching (a swarm's members). */
export interface SyncGossip {
  digests: Record<string, ManifestDigest>;
  fetching: string[];
}

export interface SyncPeer {
  id: string;
  address: string;
  alive: boolean;
  capabilities: readonly string[];
  sync: SyncGossip | undefined;
}

export interface SyncServiceOptions {
  nodeId: string;
  capabilities: readonly string[];
  categories: readonly DataCategory[];
  limits: SyncLimits;
  timing: Timing;
  transport: PeerTransport;
  index: ManifestIndex;
  /** Checks and writes the pieces of files being received (its own workers: a long manifest scan never delays them). */
  pieceHasher: Hasher;
  log: Logger;
  trace: (record: TraceRecord) => void;
  peers: () => SyncPeer[];
  /** Called when what this node gossips about its data changed. */
  onGossipChange: () => void;
  onBytes?: (direction: "sent" | "received", bytes: number) => void;
  random?: () => number;
  /**
   * The retention rules this node decides itself for a category (from the replicated state it holds; none on a
   * node that holds none). Rules learned from peers' manifests are applied too.
   */
  retired?: (category: string) => Retired[];
}

/** Most files a node announces it is fetching; more are fetched all the same, just not offered to a swarm. */
const MAX_ANNOUNCED = 32;
/** In each data root, the folder of transfers in progress (a dot folder: scans do not see it). */
const PARTIAL_DIR = ".p2p-partial";
/** Manifests fetched in parallel in one round. */
const MANIFEST_FETCHES_AT_ONCE = 8;
/** Finished sessions kept for status. */
const MAX_FINISHED = 200;
/** A transfer that was refused (disk gate, path) or gave up is planned again after this long. */
const HOLD_OFF_MS = 30_000;
/** A swarm receiver that may not use the origins does so anyway after this long without receiving anything. */
const SWARM_STALL_MS = 5_000;

/**
 * Keeps this node's copies of the categories its policy gives it: compares the manifests its peers
 * gossip with its own, and runs a bounded number of transfer sessions for what is missing.
 */
export class SyncService {
  private readonly remote = new Map<string, Manifest>();
  private readonly active = new Map<string, SyncSession>();
  /** Transfers planned but not yet running (path and disk checks under way), by key, with their file. */
  private readonly starting = new Map<string, string>();
  private readonly finished: SyncSessionStatus[] = [];
  private firstSeen: FirstSeen = new Map();
  /** When each transfer last received bytes (a swarm receiver falls back to the origins when this is old). */
  private readonly lastProgress = new Map<string, number>();
  private readonly heldOff = new Map<string, { until: number; reason: string }>();
  readonly uploads: Slots;
  readonly uploadRate: RateLimiter;
  private readonly downloadRate: RateLimiter;
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  private round: Promise<void> | null = null;
  private scanning: Promise<void> | null = null;
  private followUp: Promise<void> | null = null;
  private settling: ReturnType<typeof setTimeout> | null = null;
  private lastGossip = "";
  private wantsMemo: { inputs: string; wants: Want[] } = { inputs: "", wants: [] };
  private sessionSeq = 0;
  /** Scans and recorded transfers write the index: a full disk is logged once, not at every scan. */
  private readonly indexWrites: GuardedWrite;
  /** The retention rules in force per category: this node's own and its live peers', merged each round. */
  private rules = new Map<string, Retired[]>();
  /** Per category, the rules and index digest last swept: the files are looked at again only when either moves. */
  private readonly swept = new Map<string, string>();
  private sweeping: Promise<void> | null = null;

  constructor(private readonly opts: SyncServiceOptions) {
    this.indexWrites = new GuardedWrite(opts.log, "data index update");
    for (const c of opts.categories) mkdirSync(partialDir(c), { recursive: true });
    this.uploads = new Slots(opts.limits.maxUploads);
    this.uploadRate = new RateLimiter(opts.limits.uploadRate);
    this.downloadRate = new RateLimiter(opts.limits.downloadRate);
  }

  start(): void {
    if (this.opts.categories.length === 0) return;
    void this.scan();
    this.timers.push(setInterval(() => void this.scan(), this.opts.limits.scanIntervalMs));
    this.timers.push(setInterval(() => void this.runRound(), this.opts.timing.dataSyncRoundMs));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    if (this.settling) clearTimeout(this.settling);
    for (const session of this.active.values()) session.stop();
  }

  gossip(): SyncGossip {
    return {
      digests: this.digests(),
      fetching: [...this.active.values()]
        .filter((s) => this.category(s.category)?.swarm)
        .map((s) => s.sha256)
        .slice(0, MAX_ANNOUNCED),
    };
  }

  /** Rescans the data roots, then compares with the peers at once; returns the sessions running after. */
  async now(category?: string): Promise<SyncSessionStatus[]> {
    await this.scan(category);
    await this.runRound(true);
    return [...this.active.values()].map((s) => s.status());
  }

  status() {
    const active = [...this.active.values()].map((s) => s.status());
    return {
      node: this.opts.nodeId,
      categories: this.opts.categories.map((c) => ({
        name: c.name,
        root: c.root,
        holds: holdsCategory(c, this.opts.capabilities),
        swarm: c.swarm,
        ...this.opts.index.digest(c.name),
      })),
      active,
      /** Transfers planned whose path and disk checks are still under way. */
      starting: this.starting.size,
      heldOff: [...this.heldOff].map(([key, b]) => ({ key, ...b })),
      recent: this.finished.slice(-50),
      limits: this.opts.limits,
      uploads: { inUse: this.uploads.inUse, limit: this.uploads.limit },
    };
  }

  /**
   * The nodes known to hold a file: this one (by its index) and the live peers whose latest manifest lists it. A
   * node learns of others' files only in categories it holds itself, so this is as complete as those are.
   */
  holders(sha256: string): string[] {
    const out = new Set<string>();
    if (this.opts.index.findBySha(sha256)) out.add(this.opts.nodeId);
    const alive = new Set(
      this.opts
        .peers()
        .filter((p) => p.alive)
        .map((p) => p.id),
    );
    for (const manifest of this.remote.values()) {
      if (alive.has(manifest.node) && manifest.files.some((f) => f.sha256 === sha256)) out.add(manifest.node);
    }
    return [...out].sort();
  }

  session(id: string): SyncSessionStatus | null {
    for (const s of this.active.values()) if (s.id === id) return s.status();
    return this.finished.find((s) => s.id === id) ?? null;
  }

  manifest(category: string): Manifest | null {
    if (!this.category(category)) return null;
    const retired = this.rules.get(category) ?? [];
    return { ...this.opts.index.manifest(category), digest: this.digestOf(category), retired };
  }

  /** The category's index digest with its retention rules folded in: a new rule is news to the peers. */
  private digestOf(category: string): string {
    const fingerprint = retiredFingerprint(this.rules.get(category) ?? []);
    const digest = this.opts.index.digest(category).digest;
    return fingerprint ? `${digest}.${fingerprint}` : digest;
  }

  private digests(): Record<string, ManifestDigest> {
    const out = this.opts.index.digests();
    for (const [name, digest] of Object.entries(out)) out[name] = { ...digest, digest: this.digestOf(name) };
    return out;
  }

  /** The retention rules this node applies to a category (for status and tests). */
  retiredRules(category: string): Retired[] {
    return this.rules.get(category) ?? [];
  }

  /**
   * Files of `category` under `prefix` that live peers hold and this node still lacks (retired ones aside): a
   * trainer waits for these to arrive before it reads the run's games.
   */
  missingUnder(category: string, prefix: string): string[] {
    return this.wants()
      .filter((w) => w.category.name === category && w.entry.path.startsWith(prefix))
      .map((w) => `${w.entry.path}@${w.entry.sha256}`);
  }

  /**
   * Merges this node's own rules with those its live peers' manifests carry; then deletes the files they retire.
   * Runs each round, so a rule decided by the replicated state reaches every holder within a round or two.
   */
  private applyRetention(): void {
    const alive = new Set(
      this.opts
        .peers()
        .filter((p) => p.alive)
        .map((p) => p.id),
    );
    const next = new Map<string, Retired[]>();
    for (const category of this.opts.categories) {
      const learned = [...this.remote.values()]
        .filter((m) => m.category === category.name && alive.has(m.node))
        .map((m) => m.retired);
      const rules = mergeRetired([this.opts.retired?.(category.name) ?? [], ...learned]);
      if (rules.length > 0) next.set(category.name, rules);
    }
    this.rules = next;
    this.publishIfChanged();
    if (!this.sweeping && next.size > 0) {
      this.sweeping = this.sweep().finally(() => {
        this.sweeping = null;
      });
    }
  }

  /** Deletes the held files the rules retire, then rescans what changed. */
  private async sweep(): Promise<void> {
    for (const [name, rules] of this.rules) {
      const category = this.category(name);
      if (!category) continue;
      const state = this.digestOf(name);
      if (this.swept.get(name) === state) continue;
      this.swept.set(name, state);
      const doomed = this.opts.index.manifest(name).files.filter((f) => isRetired(f.path, f.sha256, rules));
      if (doomed.length === 0) continue;
      let removed = 0;
      for (const file of doomed) {
        const resolved = await resolveInRoot(category.root, file.path);
        if (!resolved.ok) continue;
        await rm(resolved.path, { force: true })
          .then(() => rmdir(dirname(resolved.path)).catch(() => {})) // an emptied epoch folder goes too
          .then(() => removed++)
          .catch((e) => this.opts.log.warn("retention: delete failed", { file: file.path, error: String(e) }));
      }
      this.opts.log.info("retention: deleted retired files", { category: name, files: removed });
      await this.scan(name);
    }
  }

  /** What this node can serve of a file: the whole of a finished one, or the verified pieces of one in flight. */
  async served(sha256: string): Promise<ServedFile | null> {
    const found = this.opts.index.findBySha(sha256);
    if (found) {
      const category = this.category(found.category);
      if (!category) return null;
      const resolved = await resolveInRoot(category.root, found.path);
      if (!resolved.ok) return null;
      return { absPath: resolved.path, size: found.size, sha256 };
    }
    const session = this.sessionFor(sha256);
    const partial = session?.partialView();
    return partial ? { ...partial, sha256 } : null;
  }

  pieceMap(sha256: string): PieceMap | null {
    const found = this.opts.index.findBySha(sha256);
    if (found) {
      return { sha256, size: found.size, pieceBytes: PIECE_BYTES, pieces: found.pieces };
    }
    return this.sessionFor(sha256)?.pieceMapView() ?? null;
  }

  private sessionFor(sha256: string): SyncSession | undefined {
    for (const s of this.active.values()) if (s.sha256 === sha256) return s;
    return undefined;
  }

  private category(name: string): DataCategory | undefined {
    return this.opts.categories.find((c) => c.name === name);
  }

  private scan(category?: string): Promise<void> {
    if (this.scanning) {
      // The scan under way may have listed the folders before the caller's change: one more scan follows it
      // (shared by every caller meanwhile), so a file published now is indexed and gossiped now, not a period later.
      this.followUp ??= this.scanning.then(() => {
        this.followUp = null;
        return this.scan();
      });
      return this.followUp;
    }
    this.scanning = this.opts.index
      .scan(category)
      .then((result) => {
        this.indexWrites.succeeded();
        this.publishIfChanged();
        // A file too fresh to trust was left out: it is looked at again as soon as it has settled, not a period later.
        if (result.skipped > 0 && !this.settling) {
          this.settling = setTimeout(() => {
            this.settling = null;
            void this.scan(category);
          }, this.opts.index.settleMs + 50);
        }
      })
      .catch((e) => this.indexWrites.failed(e))
      .finally(() => {
        this.scanning = null;
      });
    return this.scanning;
  }

  private publishIfChanged(): void {
    const text = JSON.stringify(this.gossip());
    if (text === this.lastGossip) return;
    this.lastGossip = text;
    this.opts.onGossipChange();
  }

  /** One round at a time; a forced round asked for during another runs right after it. */
  private runRound(force = false): Promise<void> {
    if (this.round) return force ? this.round.then(() => this.runRound(true)) : this.round;
    this.round = this.refreshManifests(force)
      .then(() => this.applyRetention())
      .then(() => this.plan())
      .catch((e) => this.opts.log.warn("sync round failed", { error: String(e) }))
      .finally(() => {
        this.round = null;
      });
    return this.round;
  }

  /**
   * Fetches the manifest of every peer category whose gossiped digest differs from the copy we have
   * (`force`: every one, for an operator's "sync now" that should not wait for the gossip).
   */
  private async refreshManifests(force: boolean): Promise<void> {
    const mine = this.opts.categories.filter((c) => holdsCategory(c, this.opts.capabilities));
    const peers = this.opts.peers();
    // Manifests of peers that left the membership (not merely died) are dropped.
    for (const key of this.remote.keys()) if (!peers.some((p) => key.startsWith(`${p.id}/`))) this.remote.delete(key);
    const stale: Array<{ peer: SyncPeer; category: DataCategory }> = [];
    for (const peer of peers) {
      if (!peer.alive || (!peer.sync && !force)) continue;
      for (const category of mine) {
        const digest = peer.sync?.digests[category.name];
        if (force || (digest && this.remote.get(`${peer.id}/${category.name}`)?.digest !== digest.digest)) {
          stale.push({ peer, category });
        }
      }
    }
    // A few at a time, so a round with many stale manifests takes about one deadline per few peers.
    for (let i = 0; i < stale.length; i += MANIFEST_FETCHES_AT_ONCE) {
      await Promise.all(
        stale.slice(i, i + MANIFEST_FETCHES_AT_ONCE).map((s) => this.fetchManifest(s.peer, s.category)),
      );
    }
  }

  private async fetchManifest(peer: SyncPeer, category: DataCategory): Promise<void> {
    try {
      const body = await this.opts.transport.request(peer, ROUTES.peerManifest, {
        params: { category: category.name },
        timeoutMs: this.opts.timing.manifestTimeoutMs,
      });
      const parsed = v.safeParse(manifestSchema, body);
      if (parsed.success) this.remote.set(`${peer.id}/${category.name}`, parsed.output);
      else this.opts.log.warn("malformed manifest", { peer: peer.id, category: category.name });
    } catch (e) {
      this.opts.log.debug("manifest fetch failed", { peer: peer.id, category: category.name, error: String(e) });
    }
  }

  /** What this node lacks (`wantedFiles`), recomputed only when a manifest (ours or a live peer's) changed. */
  private wants(): Want[] {
    const alive = new Set(
      this.opts
        .peers()
        .filter((p) => p.alive)
        .map((p) => p.id),
    );
    const inputs = [
      JSON.stringify(this.digests()),
      ...[...this.remote].filter(([, m]) => alive.has(m.node)).map(([key, m]) => `${key}=${m.digest}`),
    ].join("|");
    if (inputs === this.wantsMemo.inputs) return this.wantsMemo.wants;
    const wants = wantedFiles({
      categories: this.opts.categories,
      capabilities: this.opts.capabilities,
      local: (category) => this.opts.index.manifest(category).files,
      remote: this.remote,
      alive,
      rules: (category) => this.rules.get(category) ?? [],
    });
    this.wantsMemo = { inputs, wants };
    return wants;
  }

  /** Starts the transfers `planTransfers` picks. */
  private plan(): void {
    const now = Date.now();
    for (const [key, held] of this.heldOff) if (held.until <= now) this.heldOff.delete(key);
    const busy = new Map(this.starting);
    for (const [key, session] of this.active) busy.set(key, session.sha256);
    const { start, firstSeen } = planTransfers({
      now,
      nodeId: this.opts.nodeId,
      wants: this.wants(),
      maxTransfers: this.opts.limits.maxTransfers,
      busy,
      heldOff: this.heldOff,
      firstSeen: this.firstSeen,
      receivers: (category) => this.receivers(category),
    });
    this.firstSeen = firstSeen;
    for (const { key, want } of start) {
      this.starting.set(key, want.entry.sha256);
      void this.begin(key, want);
    }
  }

  /** The nodes the category's policy sends files to: this node and its live peers that hold the category. */
  private receivers(category: DataCategory): string[] {
    const peers = this.opts.peers().filter((p) => p.alive && holdsCategory(category, p.capabilities));
    return [this.opts.nodeId, ...peers.map((p) => p.id)];
  }

  private async begin(key: string, want: Want): Promise<void> {
    try {
      const opened = await this.open(key, want);
      this.starting.delete(key);
      if (opened) await this.run(key, want, opened.session, opened.finalPath);
    } catch (e) {
      this.holdOff(key, `failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.starting.delete(key);
      this.active.delete(key);
      this.lastProgress.delete(key);
      this.publishIfChanged();
    }
  }

  /** The session for a planned transfer, or null when its path or the disk gate refuses it. */
  private async open(key: string, want: Want): Promise<{ session: SyncSession; finalPath: string } | null> {
    const { category, entry } = want;
    const target = await resolveInRoot(category.root, entry.path);
    if (!target.ok) {
      this.holdOff(key, target.reason);
      return null;
    }
    const gate = await diskGate(category.root, entry.size, this.opts.limits.diskMaxPercent);
    if (!gate.ok) {
      this.holdOff(key, gate.reason);
      return null;
    }
    const startedAt = Date.now();
    const session = new SyncSession({
      id: `${this.opts.nodeId}-${startedAt.toString(36)}-${(this.sessionSeq++).toString(36)}`,
      category: category.name,
      path: entry.path,
      sha256: entry.sha256,
      size: entry.size,
      finalPath: target.path,
      partialPath: join(partialDir(category), `${entry.sha256}.partial`),
      sources: () => this.sourcesFor(want, key),
      hasher: this.opts.pieceHasher,
      trace: this.opts.trace,
      random: this.opts.random ?? Math.random,
      // A lone receiver fetches in order (one sequential write); a swarm spreads its starting points.
      fetch: { pieceTimeoutMs: this.opts.timing.pieceTimeoutMs, inOrder: !category.swarm, perSourceInFlight: 4 },
    });
    return { session, finalPath: target.path };
  }

  private async run(key: string, want: Want, session: SyncSession, finalPath: string): Promise<void> {
    const { category, entry } = want;
    this.active.set(key, session);
    this.lastProgress.set(key, Date.now());
    this.publishIfChanged();
    const outcome = await session.run();
    const status = session.status();
    this.finished.push(status);
    if (this.finished.length > MAX_FINISHED) this.finished.splice(0, this.finished.length - MAX_FINISHED);
    if (outcome.state === "done") {
      await utimes(finalPath, new Date(), new Date(entry.mtimeMs)).catch(() => {});
      // Unrecorded (a full disk), the file is hashed by the next scan instead.
      this.indexWrites.run(() => this.opts.index.record(category.name, entry, outcome.pieces));
      this.opts.log.info("synced", {
        category: category.name,
        path: entry.path,
        bytes: entry.size,
        ms: Date.now() - status.startedAt,
      });
    } else if (outcome.state === "given-up") {
      this.holdOff(key, `gave up: ${status.lastError ?? "unknown error"}`);
    }
  }

  private holdOff(key: string, reason: string): void {
    this.heldOff.set(key, { until: Date.now() + HOLD_OFF_MS, reason });
    this.opts.log.warn("sync held off", { file: key, reason, retryInMs: HOLD_OFF_MS });
  }

  /**
   * Sources for one attempt: every live holder of the finished file and, for a swarm, every other
   * receiver (its verified pieces become usable as it gets them). In a swarm the origins (the holders
   * when this node first saw the file) serve each receiver only its share of the pieces no peer has
   * yet (the first receiver's share is all), or anything after a stall; so each piece leaves an origin
   * at most about twice and spreads among the receivers.
   */
  private async sourcesFor(want: Want, key: string): Promise<{ map: PieceMap; sources: PeerSource[] }> {
    const { entry, category } = want;
    const sourceOpts = {
      transport: this.opts.transport,
      pieceTimeoutMs: this.opts.timing.pieceTimeoutMs,
      download: this.downloadRate,
      onBytes: (n: number) => {
        this.lastProgress.set(key, Date.now());
        this.opts.onBytes?.("received", n);
      },
    };
    const holders = this.holdersOf(want);
    let map: PieceMap | null = null;
    const errors: string[] = [];
    for (const holder of holders.filter((h) => h.complete)) {
      try {
        map = await fetchPieceMap(holder, entry.sha256, sourceOpts);
        break;
      } catch (e) {
        errors.push(String(e));
      }
    }
    if (!map) throw new Error(`no holder answered for the piece map (${errors.join("; ") || "no live holder"})`);
    if (!category.swarm) return { map, sources: holders.map((h) => new PeerSource(h, entry.sha256, sourceOpts)) };
    // Every other receiver is a source from the start: its pieces show up (polled) once it has some.
    const peers = holders
      .filter((h) => !want.origins.has(h.id))
      .map((h) => {
        const source = new PeerSource(h, entry.sha256, sourceOpts);
        source.follow(this.opts.timing.pieceMapRefreshMs);
        return source;
      });
    const share = originShare(entry.sha256, this.opts.nodeId, this.receivers(category));
    const stalled = () => Date.now() - (this.lastProgress.get(key) ?? Date.now()) > SWARM_STALL_MS;
    const origins = holders
      .filter((h) => want.origins.has(h.id))
      .map(
        (h) =>
          new OriginSource(
            h,
            entry.sha256,
            sourceOpts,
            (piece) => stalled() || (share(piece) && !peers.some((p) => p.has(piece))),
          ),
      );
    return { map, sources: [...peers, ...origins] };
  }

  /** Live holders of the file: finished ones (from their manifests) and, in a swarm, those fetching it. */
  private holdersOf(want: Want): Holder[] {
    const { entry, category } = want;
    const alive = this.opts.peers().filter((p) => p.alive);
    const holders: Holder[] = [];
    for (const [key, manifest] of this.remote) {
      const peer = alive.find((p) => p.id === manifest.node);
      if (!peer || !key.endsWith(`/${category.name}`)) continue;
      if (manifest.files.some((f) => f.sha256 === entry.sha256)) {
        holders.push({ id: peer.id, address: peer.address, complete: true });
      }
    }
    if (!category.swarm) return holders;
    for (const p of alive) {
      const receiver = holdsCategory(category, p.capabilities) || p.sync?.fetching.includes(entry.sha256);
      if (receiver && !holders.some((h) => h.id === p.id)) {
        holders.push({ id: p.id, address: p.address, complete: false });
      }
    }
    return holders;
  }
}

/** A finished holder in a swarm, offered only the pieces the policy lets it serve. */
class OriginSource extends PeerSource {
  constructor(
    holder: Holder,
    sha256: string,
    opts: ConstructorParameters<typeof PeerSource>[2],
    private readonly allowed: (piece: number) => boolean,
  ) {
    super(holder, sha256, opts);
  }

  override has(piece: number): boolean {
    return this.allowed(piece);
  }
}

/** Where a category's transfers in progress live: inside its root (one filesystem, so the final rename is atomic). */
export function partialDir(category: Pick<DataCategory, "root">): string {
  return join(category.root, PARTIAL_DIR);
}
