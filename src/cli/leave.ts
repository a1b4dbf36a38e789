import { defineCommand } from "citty";
import { connect, fail, targetArgs } from "./target.ts";

export const leaveCommand = defineCommand({
  meta: { name: "leave", description: "Ask a node to announce a graceful leave and stop" },
  args: { ...targetArgs, reason: { type: "string", description: "Why (recorded in the log)" } },
  async run({ args }) {
    try {
      await connect(args).call("leave", { body: { reason: args.reason } });
      console.log("leaving");
    } catch (e) {
      fail(e);
    }
  },
});
