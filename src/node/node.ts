import { dirname, resolve } from "node:path";
import type { Server } from "bun";
import type { NodeConfig } from "../config/load.ts";
import { electionWindowChange, type LeaderHint, leaderHint as pickLeaderHint } from "../consensus/hints.ts";
import { kvSet } from "../consensus/kv.ts";
import { ConsensusRuntime } from "../consensus/runtime.ts";
import { DataDirError, type Db, openDataDir } from "../db/client.ts";
import { loadPeers, readMeta, writeMeta } from "../db/peers.ts";
import { TraceStore } from "../db/traces.ts";
import { INCARNATION_KEY, MembershipRuntime } from "../membership/runtime.ts";
import { Membership } from "../membership/swim.ts";
import { AuthFailures } from "../net/auth-failures.ts";
import { limitBodies } from "../net/body-limit.ts";
import { isCounter, MAX_COUNTER } from "../net/bounds.ts";
import { onPeerRefusal, routePeersVia } from "../net/client.ts";
import { errorResponse } from "../net/errors.ts";
import { gate } from "../net/gate.ts";
import { LoginThrottle } from "../net/login-throttle.ts";
import { httpTransport } from "../net/peer-transport.ts";
import { RelayClient } from "../net/relay/client.ts";
import { type Lane, RELAY_CONNECT_PATH, RELAY_HOP_HEADER, RELAY_TO_HEADER } from "../net/relay/frames.ts";
import { passToRelay } from "../net/relay/hop.ts";
import { unreachable } from "../net/relay/reachability.ts";
import { type RelayConnection, RelayServer } from "../net/relay/server.ts";
import { ReplayGuard } from "../net/replay-guard.ts";
import { errorText } from "../observability/guarded-write.ts";
import type { Logger } from "../observability/log.ts";
import { LoopLagMonitor } from "../observability/loop-lag.ts";
import { Metrics } from "../observability/metrics.ts";
import { adminRoutes } from "../routes/admin.ts";
import { createRouter, unexpectedError } from "../routes/app.ts";
import { consensusRoutes } from "../routes/consensus.ts";
import { healthRoutes } from "../routes/health.ts";
import { observeRoutes } from "../routes/observe.ts";
import { peerRoutes } from "../routes/peer.ts";
import { relayRoutes } from "../routes/relay.ts";
import { runRoutes } from "../routes/runs.ts";
import { syncRoutes } from "../routes/sync.ts";
import { workRoutes } from "../routes/work.ts";
import { RUN_COMMANDS } from "../runs/commands.ts";
import { RunDriver } from "../runs/driver.ts";
import { EVALUATION_COMMANDS } from "../runs/evaluation-commands.ts";
import { retiredFiles } from "../runs/retired-files.ts";
import { RunService } from "../runs/service.ts";
import { importModel, runFolders } from "../runs/stage-io.ts";
import { listRuns } from "../runs/state.ts";
import type { NodeInfo } from "../shared/node-info.ts";
import { Hasher } from "../sync/hasher.ts";
import { ManifestIndex } from "../sync/manifest.ts";
import { SyncService } from "../sync/service.ts";
import { uiRoutes } from "../ui/routes.ts";
import { VERSION } from "../version.ts";
import { WORK_COMMANDS } from "../work/commands.ts";
import { loadDrain, saveDrain } from "../work/drain.ts";
import { WorkService } from "../work/service.ts";
import { Worker } from "../work/worker.ts";
import { Failpoints } from "./failpoints.ts";
import { sampleResources } from "./resources.ts";
import { type NodeStatus, peerStatus } from "./status.ts";

const CLUSTER_KEY = "cluster";
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A relayed request's answer is awaited this long (a piece of a file over a slow link included), and this many at once. */
const RELAY_TIMEOUT_MS = 60_000;
const RELAY_MAX_PENDING = 1_024;

export interface RunningNode {
  readonly url: string;
  /** Resolves when the node has stopped (after a leave or a signal). */
  readonly stopped: Promise<void>;
  leave(reason: string): Promise<void>;
}

/** Opens state, joins the cluster and serves the node's one port until asked to leave. */
export async function startNode(config: NodeConfig, log: Logger): Promise<RunningNode> {
  const startedAt = Date.now();
  const { db, value: incarnation } = openDataDir(config.dataDir, (db) => {
    claimDataDir(db, config);
    const stored = Number(readMeta(db, INCARNATION_KEY) ?? 0);
    if (!isCounter(stored + 1)) {
      throw new DataDirError(`the incarnation on disk is not an integer from 0 to ${MAX_COUNTER - 1}, found ${stored}`);
    }
    const next = stored + 1;
    writeMeta(db, INCARNATION_KEY, String(next));
    return next;
  });

  const { timing } = config;
  const failpoints = new Failpoints(process.env.P2P_FAILPOINTS);
  log.info("starting", {
    version: VERSION,
    cluster: config.clusterName,
    address: config.address,
    listen: config.listenPort === null ? "none (reached through relays)" : `${config.listenHost}:${config.listenPort}`,
    dataDir: config.dataDir,
    voter: config.voter,
    capabilities: config.capabilities,
    incarnation,
    seeds: config.seeds,
    timing,
    sync: config.sync,
    data: config.data,
  });
  if (Object.keys(failpoints.armed).length > 0) log.warn("failpoints armed (testing only)", failpoints.armed);

  const metrics = new Metrics();
  const authFailures = new AuthFailures(log, Date.now);
  const configuredAt = new Map(config.configuredNodes.map((n) => [n.address, n.id] as const));
  onPeerRefusal((to, address, reason) =>
    authFailures.record("outbound", to ?? configuredAt.get(address) ?? address, address, reason),
  );
  const traces = new TraceStore(db, { log });
  const lag = new LoopLagMonitor();
  const core = new Membership({
    self: { id: config.nodeId, address: config.address },
    cluster: config.clusterName,
    incarnation,
    timing,
    seeds: config.seeds,
    now: Date.now(),
    random: Math.random,
  });
  core.restore(loadPeers(db), Date.now());
  // Membership, work and data sync reach other nodes through this one transport (signing, deadlines, relays).
  const transport = httpTransport({ nodeId: config.nodeId, secret: config.secret });
  const membership = new MembershipRuntime({ core, db, traces, log, metrics, timing, transport });

  const voters = new Map(config.configuredNodes.filter((n) => n.voter).map((n) => [n.id, n.address] as const));
  let knownLeader: { id: string; term: number } | null = null;
  let selfInfo: NodeInfo | null = null;
  let busySlots = () => 0;
  let drainReason = (): string | null => null;
  let syncGossip: () => NodeInfo["sync"] = () => undefined;
  let relaysOf: () => string[] | undefined = () => undefined;
  /** The relays a peer behind NAT gossips, live ones first (one not yet found dead is still worth a try after). */
  const relaysTo = (to: string) => {
    const member = core.get(to);
    if (!member?.info?.nat) return [];
    const relays = (member.info.relays ?? []).map((id) => core.get(id)).filter((r) => r !== undefined);
    return [...relays.filter((r) => r.state === "alive"), ...relays.filter((r) => r.state !== "alive")];
  };
  /** The drain as gossiped and shown: its reason, when an operator drained this node. */
  const drained = (): Pick<NodeInfo, "draining"> => {
    const reason = drainReason();
    return reason === null ? {} : { draining: reason };
  };
  const publishInfo = () => {
    if (!selfInfo) return;
    const relays = relaysOf();
    core.setInfo({
      ...selfInfo,
      leader: knownLeader,
      busySlots: busySlots(),
      ...drained(),
      sync: syncGossip(),
      ...(relays ? { relays, nat: true } : {}),
    });
  };
  // Every node runs Raft; only the configured voters (the cluster file's, then the log's) campaign and vote.
  const consensus = new ConsensusRuntime({
    nodeId: config.nodeId,
    voters,
    timing,
    secret: config.secret,
    db,
    traces,
    log,
    metrics,
    commands: [kvSet, ...WORK_COMMANDS, ...RUN_COMMANDS, ...EVALUATION_COMMANDS],
    onLeaderChange: (leader, term) => {
      knownLeader = leader ? { id: leader, term } : null;
      publishInfo();
    },
  });
  const leaderHint = (): LeaderHint | null =>
    pickLeaderHint(
      knownLeader,
      core.list().map((m) => ({ id: m.id, address: m.address, state: m.state, leader: m.info?.leader })),
      (id) => consensus.addressOf(id),
    );

  /** Election timeouts follow the round trips measured to the other voters (SWIM's direct probes). */
  const adaptElectionWindow = () => {
    const rtts = consensus.raft.voters.flatMap((id) => core.get(id)?.rttMs ?? []);
    const change = electionWindowChange(timing, rtts, consensus.raft.electionWindowMs);
    if (!change) return;
    log.info("election window", { minMs: change.minMs, maxMs: change.maxMs, voterRttsMs: rtts });
    consensus.raft.setElectionWindow(change.minMs, change.maxMs, change.cause);
  };

  const work = new WorkService({
    consensus,
    db,
    jobs: config.jobs,
    nodes: () => [
      { id: config.nodeId, alive: true, info: selfInfo },
      ...core.list().map((m) => ({ id: m.id, alive: m.state === "alive", info: m.info })),
    ],
    leaseMs: config.work.leaseMs,
    keepFinished: config.work.keepFinished,
    limits: { soft: config.work.softLimit, hard: config.work.hardLimit },
  });

  const worker = new Worker({
    nodeId: config.nodeId,
    dataDir: config.dataDir,
    capabilities: config.capabilities,
    slots: config.slots,
    jobs: config.jobs,
    timing,
    transport,
    db,
    log,
    leader: () => {
      const hint = leaderHint();
      return hint?.address ? { id: hint.id, address: hint.address } : null;
    },
    resources: () => selfInfo,
    runs: config.runs,
    data: config.data,
    hashFile: async (path) => (await hasher.hashFile(path)).sha256,
    onData: (category) => {
      sync.now(category).catch((e) => log.debug("sync after a stage failed", { error: String(e) }));
    },
    missingFiles: (category, prefix) => sync.missingUnder(category, prefix),
  });
  busySlots = () => worker.busySlots();
  drainReason = () => worker.drainReason;
  const keptDrain = loadDrain(db);
  if (keptDrain !== null) {
    worker.drain(keptDrain);
    log.info("still drained, as before the restart: claiming no work until undrained", { reason: keptDrain });
  }
  /** Drains with that reason (null: undrains), keeps it across restarts where the disk allows, and gossips it. */
  const setDrain = (reason: string | null): string | null => {
    if (reason === null) worker.undrain();
    else worker.drain(reason);
    try {
      saveDrain(db, reason);
    } catch (e) {
      log.warn("the drain is in force but could not be saved: a restart would forget it", { error: errorText(e) });
    }
    log.info(reason === null ? "undrained: claiming work again" : "drained: claiming no work", { reason });
    publishInfo();
    return worker.drainReason;
  };
  const propose = (command: { name: string; payload: unknown }) => consensus.propose(command);
  const runDriver = new RunDriver({
    db,
    runs: config.runs,
    jobs: config.jobs,
    nodes: () => [
      { id: config.nodeId, alive: true, info: selfInfo },
      ...core.list().map((m) => ({ id: m.id, alive: m.state === "alive", info: m.info })),
    ],
    softLimit: config.work.softLimit,
    queued: () => work.queuedCount(),
    isLeader: () => consensus.raft.currentRole === "leader",
    propose,
    log,
    nodeId: config.nodeId,
    importModel: async (run, policy) => {
      const folders = runFolders(run, policy, config.data);
      if (!folders || !("model" in policy.bootstrap)) throw new Error(`runs.${run}: no model file or data categories`);
      const source = resolve(dirname(config.configPath), policy.bootstrap.model);
      return importModel(source, run, folders, async (path) => (await hasher.hashFile(path)).sha256);
    },
  });
  const runService = new RunService({
    db,
    driver: runDriver,
    propose,
    holders: (id) => sync.holders(id),
    runners: (type) =>
      [
        ...(config.capabilities.includes(type) ? [config.nodeId] : []),
        ...core.list().flatMap((m) => (m.state === "alive" && m.info?.capabilities.includes(type) ? [m.id] : [])),
      ].sort(),
  });

  const hasher = new Hasher();
  // Receiving is hashing bound: two workers check pieces while the main thread keeps fetching.
  const pieceHasher = new Hasher({ workers: 2 });
  const bytesMoved = metrics.counter("p2p_sync_bytes_total", "File bytes sent to and received from peers");
  const sync = new SyncService({
    nodeId: config.nodeId,
    capabilities: config.capabilities,
    categories: config.data,
    limits: config.sync,
    timing,
    transport,
    index: new ManifestIndex({ db, nodeId: config.nodeId, categories: config.data, hasher }),
    pieceHasher,
    log,
    trace: (record) => traces.record(record),
    peers: () =>
      core.list().map((m) => ({
        id: m.id,
        address: m.address,
        alive: m.state === "alive",
        capabilities: m.info?.capabilities ?? [],
        sync: m.info?.sync,
      })),
    onGossipChange: () => publishInfo(),
    onBytes: (direction, bytes) => bytesMoved({ direction }, bytes),
    retired: (category) => retiredFiles(db, category),
  });
  syncGossip = () => sync.gossip();

  const facts = { ...config, version: VERSION };
  const sample = async () => {
    adaptElectionWindow();
    try {
      selfInfo = await sampleResources(facts);
      publishInfo();
    } catch (e) {
      log.warn("resource sampling failed", { error: String(e) });
    }
  };
  await sample();

  metrics.gauge("p2p_event_loop_lag_p99_ms", "Event-loop lag p99 over the last ~10 s", () => lag.percentile(99));
  metrics.gauge("p2p_event_loop_lag_max_ms", "Largest event-loop lag seen", () => lag.maxMs);
  metrics.gauge("p2p_trace_rows_dropped_total", "Trace rows dropped because the buffer was full", () => traces.dropped);
  metrics.gauge("p2p_uptime_seconds", "Seconds since the node started", () => (Date.now() - startedAt) / 1000);

  /** What this node carries as a relay, once it has been one. */
  const relayingStatus = () => {
    const nodes = relayServer.nodes();
    if (nodes.length === 0 && relayServer.stats.requests === 0) return {};
    return { relaying: { nodes, ...relayServer.stats, queueDepth: relayServer.queueDepth() } };
  };

  const status = (): NodeStatus => {
    const now = Date.now();
    return {
      node: {
        id: config.nodeId,
        cluster: config.clusterName,
        role: consensus.raft.voters.includes(config.nodeId) ? consensus.raft.currentRole : "non-voter",
        version: VERSION,
        address: config.address,
        incarnation: core.currentIncarnation,
        uptimeMs: now - startedAt,
        resources: selfInfo && { ...selfInfo, ...drained() },
        ...(relaying ? { relays: relayClient.status() } : {}),
        ...relayingStatus(),
      },
      leader: (() => {
        const hint = leaderHint();
        return hint ? { id: hint.id, term: hint.term } : null;
      })(),
      peers: core
        .list()
        .map((m) => {
          const via = m.info?.nat ? relaysTo(m.id)[0] : undefined;
          return peerStatus(m, now, !m.info?.nat ? "direct" : via ? `via ${via.id}` : "behind NAT, no relay known");
        })
        .sort((a, b) => a.id.localeCompare(b.id)),
      signatureFailures: { inbound: authFailures.list("inbound"), outbound: authFailures.list("outbound") },
    };
  };

  let stopping: Promise<void> | undefined;
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  const leave = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info("leaving", { reason });
      await membership.leave();
      clearInterval(workTicker);
      clearInterval(runTicker);
      worker.stop();
      sync.stop();
      clearInterval(reachability);
      relayClient.stop();
      relayServer.stop();
      hasher.close();
      pieceHasher.close();
      consensus.stop();
      shutdown(server, membership, db, lag, sampler);
      log.info("stopped");
      resolveStopped();
    })();
    return stopping;
  };

  const router = createRouter(log);
  healthRoutes(router, config.nodeId);
  observeRoutes(router, { status, metrics, traces });
  peerRoutes(router, membership);
  relayRoutes(router);
  consensusRoutes(router, { consensus, db, leaderHint, nodeId: config.nodeId, failpoints });
  workRoutes(router, { work, leaderHint });
  runRoutes(router, {
    runs: runService,
    leaderHint,
    holdsState: () => consensus.raft.voters.includes(config.nodeId),
  });
  syncRoutes(router, { sync, failpoints, onSent: (bytes) => bytesMoved({ direction: "sent" }, bytes) });
  adminRoutes(router, {
    leave: (reason) => setTimeout(() => void leave(reason), 10),
    setDrain,
    jobs: () => worker.list(),
  });
  uiRoutes(router, {
    nodeId: config.nodeId,
    token: config.token,
    dataDir: config.dataDir,
    status,
    work,
    runs: runService,
    sync,
    traces,
    runNames: () => listRuns(db).map((r) => r.name),
    jobs: () => worker.list(),
    drainReason: () => worker.drainReason,
    setDrain,
    holdsState: () => consensus.raft.voters.includes(config.nodeId),
    leaderHint,
  });

  const replayGuard = () => new ReplayGuard({ windowMs: timing.clockSkewMs, maxStreams: 50_000, reorder: 4_096 });
  const configured = new Set(config.configuredNodes.map((n) => n.id));
  const gateOptions = {
    token: config.token,
    secret: config.secret,
    self: config.nodeId,
    knownSender: (id: string) => configured.has(id) || core.get(id) !== undefined,
    replay: replayGuard(),
    failures: authFailures,
    logins: new LoginThrottle(),
    maxSkewMs: timing.clockSkewMs,
    now: Date.now,
  };
  const serve = limitBodies(
    MAX_BODY_BYTES,
    gate(gateOptions, (request) => router.handle(request)),
  );
  // Nodes behind NAT: this node relays for them (any public node may), or keeps relays itself (nat = true).
  const relayServer = new RelayServer({
    timeoutMs: RELAY_TIMEOUT_MS,
    maxPending: RELAY_MAX_PENDING,
    log,
    relaysOf: (node) => relaysTo(node).map((r) => r.id),
  });
  const relayClient = new RelayClient({
    self: config.nodeId,
    secret: config.secret,
    candidates: () =>
      core.list().map((m) => ({
        id: m.id,
        address: m.address,
        alive: m.state === "alive",
        nat: !!m.info?.nat,
        rttMs: m.rttMs,
      })),
    handle: (request) => serve(request),
    onChange: () => publishInfo(),
    log,
    trace: (record) => traces.record(record),
  });
  // A node not configured as behind NAT takes relays when it finds that no peer reaches it directly.
  let relaying = config.nat;
  let lastInboundPeerAt: number | null = null;
  let lastReachabilityCheck = Date.now();
  const reachability = setInterval(() => {
    if (relaying) return;
    const now = Date.now();
    // After a stall (SIGSTOP, a blocked loop) silence proves nothing: peers had no chance to reach us yet.
    if (now - lastReachabilityCheck > 3 * timing.periodMs) lastInboundPeerAt = now;
    lastReachabilityCheck = now;
    const alivePeers = core.list().filter((m) => m.id !== config.nodeId && m.state === "alive").length;
    const silenceMs = 10 * timing.periodMs;
    if (!unreachable({ now, startedAt, lastInboundAt: lastInboundPeerAt, alivePeers, silenceMs })) return;
    relaying = true;
    const cause = `no peer reached this node directly for ${silenceMs} ms while ${alivePeers} answer it: behind NAT`;
    log.warn("taking relays", { cause });
    traces.record({
      machine: "reachability",
      instance: config.nodeId,
      from: "direct",
      to: "relayed",
      event: "silence",
      cause,
      at: now,
    });
    relayClient.start();
    publishInfo();
  }, timing.periodMs);
  relaysOf = () => (relaying ? relayClient.relays() : undefined);
  routePeersVia((to) => relaysTo(to).map((r) => r.address));
  metrics.gauge("p2p_relay_requests_total", "Requests relayed to nodes behind NAT", () => relayServer.stats.requests);
  metrics.gauge("p2p_relay_failed_total", "Relayed requests that got no answer", () => relayServer.stats.failed);
  metrics.gauge("p2p_relay_bytes_total", "Body bytes relayed", () => [
    [{ direction: "to_nat" }, relayServer.stats.bytesToNat],
    [{ direction: "from_nat" }, relayServer.stats.bytesFromNat],
  ]);
  metrics.gauge("p2p_relay_queue_depth", "Relayed requests waiting for an answer", () => relayServer.queueDepth());
  metrics.gauge("p2p_relay_nodes", "Nodes behind NAT this node relays for", () => relayServer.nodes().length);
  // A relay lets through only what the node behind NAT would accept (a cluster member's signature for that node, or
  // the operator token), so nobody outside the cluster spends its lanes. Its own nonce cache, as the node keeps one.
  const relayReplay = replayGuard();
  const relayed = limitBodies(MAX_BODY_BYTES, (request, remote) => {
    const to = request.headers.get(RELAY_TO_HEADER) as string;
    const admit = gate({ ...gateOptions, self: to, replay: relayReplay }, (checked) => {
      // Not a relay of that node: passed on to one that is, unless it came from another member already.
      const relays = relaysTo(to).filter((r) => r.id !== config.nodeId && r.state === "alive");
      if (relayServer.carries(to) || checked.headers.has(RELAY_HOP_HEADER) || relays.length === 0) {
        return relayServer.forward(to, checked);
      }
      return passToRelay(checked, relays, { self: config.nodeId, timeoutMs: RELAY_TIMEOUT_MS });
    });
    return admit(request, remote);
  });
  const listening = {
    // limitBodies enforces the limit (a JSON 413) on declared and chunked bodies alike; Bun's own,
    // which answers with an empty 413, is set out of the way. An unread body is discarded, not buffered.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch: async (request: Request, server: Server<RelayConnection>) => {
      const remote = server.requestIP(request)?.address;
      const relayTo = request.headers.get(RELAY_TO_HEADER);
      if (relayTo !== null && relayTo !== config.nodeId) return relayed(request, remote);
      const response = await serve(request, remote);
      // A peer's request that passed the signature check arrived directly: this node is reachable.
      if (response.status !== 401 && new URL(request.url).pathname.startsWith("/peer/")) lastInboundPeerAt = Date.now();
      if (response.status !== 200 || !isRelayUpgrade(request)) return response;
      const lane = (await response.json()) as { node: string; lane: Lane };
      return server.upgrade(request, { data: { relay: true, ...lane } })
        ? undefined
        : errorResponse(400, "upgrade_failed", "a relay lane must be a WebSocket upgrade");
    },
    websocket: relayServer.websocket,
    error: (error: Error) => unexpectedError(log, error, "(outside the router)"),
  };
  // listen = "none": a node behind NAT that binds nothing; every request reaches it down its relay lanes.
  const server =
    config.listenPort === null
      ? null
      : Bun.serve<RelayConnection>({ hostname: config.listenHost, port: config.listenPort, ...listening });
  lag.start();
  membership.start();
  consensus.start();
  worker.start();
  sync.start();
  if (relaying) relayClient.start();
  const sampler = setInterval(() => void sample(), timing.resourceSampleMs);
  const workTicker = setInterval(() => {
    work.tickIfDue().catch((e) => log.warn("work tick failed", { error: String(e) }));
  }, timing.workPollMs);
  const runTicker = setInterval(() => void runDriver.tick(), timing.runTickMs);
  if (server) log.info("listening", { url: `http://${config.address}`, status: `http://${config.address}/status` });
  else log.info("not listening (listen = none): reached through relays", { relays: "gossiped once connected" });
  return { url: `http://${config.address}`, stopped, leave };
}

/** A data dir belongs to one cluster and one node; refusing a mismatch avoids merging two clusters' state. */
function claimDataDir(db: Db, config: NodeConfig): void {
  const owner = `${config.clusterName}/${config.nodeId}`;
  const existing = readMeta(db, CLUSTER_KEY);
  if (existing && existing !== owner) {
    throw new DataDirError(`data dir ${config.dataDir} belongs to ${existing}, not ${owner}; use another --data-dir`);
  }
  if (!existing) writeMeta(db, CLUSTER_KEY, owner);
}

function shutdown(
  server: Server<RelayConnection> | null,
  membership: MembershipRuntime,
  db: Db,
  lag: LoopLagMonitor,
  sampler: ReturnType<typeof setInterval>,
): void {
  clearInterval(sampler);
  lag.stop();
  membership.stop();
  void server?.stop(true);
  db.$client.close();
}

function isRelayUpgrade(request: Request): boolean {
  return (
    request.headers.get("upgrade")?.toLowerCase() === "websocket" &&
    new URL(request.url).pathname === RELAY_CONNECT_PATH
  );
}
