import { defineCommand } from "citty";
import { formatAge, table } from "./table.ts";
import { connect, fail, targetArgs } from "./target.ts";

const show = defineCommand({
  meta: { name: "show", description: "Term, role, leader, lease and the voters' replication progress" },
  args: targetArgs,
  async run({ args }) {
    try {
      const view = await connect(args).call("election");
      if (args.json) return console.log(JSON.stringify(view, null, 2));
      console.log(`term ${view.term}, this node is ${view.role}, leader ${view.leader?.id ?? "(none known)"}`);
      if (view.role === "non-voter") return;
      if (view.role === "leader") console.log(`lease: ${formatAge(Math.max(0, view.leaseRemainingMs))} left`);
      console.log(`commit index ${view.commitIndex}, last index ${view.lastIndex}, quorum ${view.quorum}`);
      if (view.lastElectionCause) console.log(`last election: ${view.lastElectionCause}`);
      console.log(
        `\n${table(
          ["VOTER", "ADDRESS", "MATCH INDEX"],
          view.voters.map((v) => [v.id, v.address ?? "-", v.matchIndex ?? "-"]),
        )}`,
      );
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
      await connect(args).call("electionTransfer", { body: { to: args.to } });
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
      await connect(args).call("electionStepDown", { body: {} });
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
