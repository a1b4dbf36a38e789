import { defineCommand } from "citty";
import { ROUTES } from "../net/route-table.ts";
import { formatAge, table } from "./table.ts";
import { ask, fail, resolveTarget, targetArgs } from "./target.ts";

interface ElectionView {
  term: number;
  role: string;
  leader: { id: string; address: string | null } | null;
  leaseRemainingMs?: number;
  quorum?: number;
  commitIndex?: number;
  lastIndex?: number;
  voters?: Array<{ id: string; address: string | null; matchIndex: number | null }>;
  lastElectionCause?: string | null;
}

const show = defineCommand({
  meta: { name: "show", description: "Term, role, leader, lease and the voters' replication progress" },
  args: targetArgs,
  async run({ args }) {
    try {
      const view = (await ask(resolveTarget(args), ROUTES.election)) as ElectionView;
      if (args.json) return console.log(JSON.stringify(view, null, 2));
      console.log(`term ${view.term}, this node is ${view.role}, leader ${view.leader?.id ?? "(none known)"}`);
      if (view.role === "leader") console.log(`lease: ${formatAge(Math.max(0, view.leaseRemainingMs ?? 0))} left`);
      if (view.commitIndex !== undefined)
        console.log(`commit index ${view.commitIndex}, last index ${view.lastIndex}, quorum ${view.quorum}`);
      if (view.lastElectionCause) console.log(`last election: ${view.lastElectionCause}`);
      if (view.voters) {
        console.log(
          `\n${table(
            ["VOTER", "ADDRESS", "MATCH INDEX"],
            view.voters.map((v) => [v.id, v.address ?? "-", v.matchIndex ?? "-"]),
          )}`,
        );
      }
    } catch (e) {
      fail(e);
    }
  },
});

const transfer = defineCommand({
  meta: { name: "transfer", description: "Hand leadership to another voter (ask the leader)" },
  args: { ...targetArgs, to: { type: "positional", description: "The voter to hand over to", required: true } },
  async run({ args }) {
    try {
      await ask(resolveTarget(args), ROUTES.electionTransfer, { body: { to: args.to } });
      console.log(`handing leadership to ${args.to}`);
    } catch (e) {
      fail(e);
    }
  },
});

const stepDown = defineCommand({
  meta: { name: "step-down", description: "Ask the leader to step down (a new election follows)" },
  args: targetArgs,
  async run({ args }) {
    try {
      await ask(resolveTarget(args), ROUTES.electionStepDown, { body: {} });
      console.log("stepping down");
    } catch (e) {
      fail(e);
    }
  },
});

export const electionCommand = defineCommand({
  meta: { name: "election", description: "Leadership: show, transfer <id>, step-down" },
  args: targetArgs,
  subCommands: { show, transfer, "step-down": stepDown },
  async run({ args, rawArgs }) {
    if (rawArgs.some((a) => a === "show" || a === "transfer" || a === "step-down")) return;
    await show.run?.({ args, rawArgs, cmd: show } as never);
  },
});
