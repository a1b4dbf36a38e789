import type { Elysia } from "elysia";
import type { LeaderHint } from "../consensus/hints.ts";
import { readKv } from "../consensus/kv.ts";
import { NotLeaderError } from "../consensus/raft.ts";
import type { ConsensusRuntime } from "../consensus/runtime.ts";
import type { Db } from "../db/client.ts";
import { VERIFIED_PEER_HEADER } from "../net/gate.ts";
import { ROUTES } from "../net/route-table.ts";
import type { Failpoints } from "../node/failpoints.ts";
import { serve } from "./define.ts";
import { found, RouteRefusal } from "./errors.ts";

/** Raft's peer RPC, the election view and hand-over, and the replicated key-value register. */
export function consensusRoutes(
  app: Elysia,
  deps: {
    consensus: ConsensusRuntime;
    db: Db;
    leaderHint: () => LeaderHint | null;
    nodeId: string;
    failpoints?: Failpoints;
  },
): void {
  const { consensus, leaderHint } = deps;
  const errors = { leaderHint };

  serve(app, ROUTES.peerRaft, async ({ body, request }) => {
    const signer = request.headers.get(VERIFIED_PEER_HEADER);
    const forged = body.messages.find((m) => m.from !== signer);
    if (forged) throw new RouteRefusal(403, "forbidden", `message from "${forged.from}" signed by "${signer}"`);
    return { messages: await consensus.receive(body.messages) };
  });

  serve(app, ROUTES.peerRaftSnapshot, ({ body, request }) => {
    if (body.from !== request.headers.get(VERIFIED_PEER_HEADER)) {
      throw new RouteRefusal(403, "forbidden", `snapshot from "${body.from}" signed by another node`);
    }
    return { messages: consensus.receiveSnapshotChunk(body) };
  });

  serve(app, ROUTES.election, () => {
    const raft = consensus.raft;
    if (!raft.voters.includes(deps.nodeId)) {
      const hint = leaderHint();
      return {
        role: "non-voter" as const,
        term: hint?.term ?? 0,
        leader: hint ? { id: hint.id, address: hint.address } : null,
      };
    }
    const lease = raft.leaseExpiresAt();
    const matches = raft.matchIndexes();
    return {
      term: raft.currentTerm,
      role: raft.currentRole,
      leader: raft.leader ? { id: raft.leader, address: consensus.addressOf(raft.leader) } : null,
      leaseExpiresAt: raft.holdsLease() ? lease : null,
      leaseRemainingMs: raft.holdsLease() ? lease - Date.now() : 0,
      quorum: raft.quorum(),
      electionTimeoutMinMs: raft.electionWindowMs,
      commitIndex: raft.committed,
      lastIndex: raft.lastIndex,
      snapshotIndex: raft.snapshotIndex,
      voters: raft.voters.map((id) => ({ id, address: consensus.addressOf(id), matchIndex: matches[id] ?? null })),
      lastElectionCause: raft.lastElectionCause || null,
    };
  });

  serve(
    app,
    ROUTES.electionTransfer,
    ({ body }) => {
      consensus.raft.transferTo(body.to);
      return { transferring: body.to };
    },
    errors,
  );

  serve(
    app,
    ROUTES.electionStepDown,
    () => {
      if (consensus.raft.currentRole !== "leader") throw new NotLeaderError(consensus.raft.leader);
      consensus.raft.stepDown("operator asked the leader to step down");
      return { steppingDown: true };
    },
    errors,
  );

  serve(
    app,
    ROUTES.voters,
    async ({ body }) => {
      const change = body.action === "add" ? { add: { id: body.id, address: body.address } } : { remove: body.id };
      const result = await consensus.changeVoters(change);
      return { ...result, voters: consensus.raft.config };
    },
    errors,
  );

  serve(
    app,
    ROUTES.kvSet,
    async ({ body }) => {
      const { index, term } = await consensus.propose({ name: "kv.set", payload: body });
      return { index, term };
    },
    errors,
  );

  serve(
    app,
    ROUTES.kvGet,
    ({ query }) => {
      // The failpoint is the nemesis's planted bug: a "linearizable" read served from local state, lease or not.
      const linearizable = query.consistency === "linearizable";
      const planted = linearizable && (deps.failpoints?.fire("consensus.read-without-lease") ?? false);
      const index = linearizable && !planted ? consensus.linearizableIndex() : null;
      const row = found(readKv(deps.db, query.key), "not_found", `no key "${query.key}"`);
      return { key: query.key, value: row.value, index: row.index, term: row.term, stale: index === null };
    },
    errors,
  );
}
