import { defineCommand } from "citty";
import { ROUTES } from "../net/route-table.ts";
import { ask, fail, resolveTarget, targetArgs } from "./target.ts";

export const leaveCommand = defineCommand({
  meta: { name: "leave", description: "Ask a node to announce a graceful leave and stop" },
  args: { ...targetArgs, reason: { type: "string", description: "Why (recorded in the log)" } },
  async run({ args }) {
    try {
      await ask(resolveTarget(args), ROUTES.leave, { body: { reason: args.reason } });
      console.log("leaving");
    } catch (e) {
      fail(e);
    }
  },
});
