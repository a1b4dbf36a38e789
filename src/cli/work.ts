import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import type * as v from "valibot";
import { Client, type ResponseOf } from "../client/client.ts";
import type { workBatchSchema } from "../work/model.ts";
import { formatAge, table } from "./table.ts";
import { connect, fail, resolveTarget, targetArgs } from "./target.ts";

const add = defineCommand({
  meta: { name: "add", description: "Submit work: --type T --params '{...}' (or --file items.json for a batch)" },
  args: {
    ...targetArgs,
    type: { type: "string", description: "Work type (a [jobs.<type>] of the cluster file)" },
    params: { type: "string", description: "The item's config as JSON (fills the job template)", default: "{}" },
    priority: { type: "string", description: "0..100 (default 50)" },
    id: { type: "string", description: "Your id for it (default: a new UUID); the same id is added once" },
    file: { type: "string", description: "A JSON file with {items: [...]} to add atomically" },
    "retry-for": { type: "string", description: "Seconds to keep retrying an answer that never came", default: "60" },
  },
  async run({ args }) {
    try {
      // Answers that never came are asked again with the same ids: the queue adds an id once.
      const target = new Client({
        ...resolveTarget(args),
        onRetry: (e) => console.error(`retrying with the same id(s): ${e.message}`),
      });
      const retryForMs = Number(args["retry-for"]) * 1_000;
      if (!(retryForMs >= 0))
        throw new Error(`--retry-for: expected a number of seconds, found "${args["retry-for"]}"`);
      // Ids are chosen here, once, so that every retry below names the same items.
      const answer = args.file
        ? await target.call("workBatch", {
            body: withIds(JSON.parse(readFileSync(args.file, "utf8"))),
            retryForMs,
          })
        : await target.call("workAdd", {
            body: {
              id: args.id ?? randomUUID(),
              type: args.type ?? "",
              config: JSON.parse(args.params),
              ...(args.priority ? { priority: Number(args.priority) } : {}),
            },
            retryForMs,
          });
      console.log(args.json ? JSON.stringify(answer, null, 2) : summary(answer));
    } catch (e) {
      fail(e);
    }
  },
});

/**
 * A batch file's items, each with an id (those it names keep theirs). The file is the user's: the node checks
 * it against the batch schema and answers 422 naming the field at fault.
 */
function withIds(file: { items?: unknown }): v.InferInput<typeof workBatchSchema> {
  if (!Array.isArray(file?.items)) return file as never;
  return { ...file, items: file.items.map((i: Record<string, unknown>) => ({ id: randomUUID(), ...i })) } as never;
}

function summary(answer: ResponseOf<"workAdd"> | ResponseOf<"workBatch">): string {
  if ("id" in answer) return `${answer.existing ? "already added" : "added"} ${answer.id}`;
  return `added ${answer.added.length}, already there ${answer.existing.length}`;
}

const list = defineCommand({
  meta: { name: "list", description: "Work items (--state, --type) and the queue's counts" },
  args: {
    ...targetArgs,
    state: { type: "string" },
    type: { type: "string" },
    limit: { type: "string", default: "50" },
  },
  async run({ args }) {
    try {
      const target = connect(args);
      const { items } = await target.call("workList", {
        query: { state: args.state, type: args.type, limit: args.limit },
      });
      if (args.json) return console.log(JSON.stringify(items, null, 2));
      const now = Date.now();
      console.log(
        table(
          ["ID", "TYPE", "STATE", "PRIO", "ATTEMPTS", "NODE", "UPDATED"],
          items.map((i) => [
            i.id,
            i.type,
            i.state,
            i.priority,
            `${i.context.attempts}/${i.context.maxAttempts}`,
            i.context.leaseNode ?? "-",
            `${formatAge(now - i.updatedAt)} ago`,
          ]),
        ),
      );
      const status = await target.call("workStatus");
      console.log(
        `\n${
          Object.entries(status.byState)
            .map(([s, n]) => `${n} ${s}`)
            .join(", ") || "queue empty"
        }`,
      );
    } catch (e) {
      fail(e);
    }
  },
});

const show = defineCommand({
  meta: { name: "show", description: "One item, its history, and why it is pending" },
  args: { ...targetArgs, id: { type: "positional", required: true } },
  async run({ args }) {
    try {
      const target = connect(args);
      const item = await target.call("workGet", { params: { id: args.id } });
      const { history } = await target.call("workHistory", { query: { item: args.id } });
      if (args.json) return console.log(JSON.stringify({ item, history }, null, 2));
      console.log(
        `${item.id}  ${item.type}  ${item.state}  attempts ${item.context.attempts}/${item.context.maxAttempts}`,
      );
      if (item.context.error) console.log(`last error: ${item.context.error}`);
      if (item.whyPending) {
        console.log(`why pending: ${item.whyPending.summary}`);
        for (const n of item.whyPending.nodes) console.log(`  ${n.node}: ${n.reasons.join("; ") || "fits"}`);
      }
      for (const h of history)
        console.log(`${new Date(h.at).toISOString()}  ${h.from ?? "(new)"} -> ${h.to}  ${h.cause ?? ""}`);
    } catch (e) {
      fail(e);
    }
  },
});

const cancel = defineCommand({
  meta: { name: "cancel", description: "Cancel an item" },
  args: { ...targetArgs, id: { type: "positional", required: true }, reason: { type: "string" } },
  async run({ args }) {
    try {
      await connect(args).call("workCancel", { params: { id: args.id }, body: { reason: args.reason } });
      console.log(`cancelled ${args.id}`);
    } catch (e) {
      fail(e);
    }
  },
});

const history = defineCommand({
  meta: { name: "history", description: "Recent transitions of work items" },
  args: { ...targetArgs, limit: { type: "string", default: "50" } },
  async run({ args }) {
    try {
      const { history: rows } = await connect(args).call("workHistory", { query: { limit: args.limit } });
      for (const h of rows) {
        console.log(
          args.json
            ? JSON.stringify(h)
            : `${new Date(h.at).toISOString()}  ${h.itemId}  ${h.from ?? "(new)"} -> ${h.to}  ${h.cause ?? ""}`,
        );
      }
    } catch (e) {
      fail(e);
    }
  },
});

export const workCommand = defineCommand({
  meta: { name: "work", description: "The work queue: add, list, show, cancel, history" },
  subCommands: { add, list, show, cancel, history },
});

export const jobsCommand = defineCommand({
  meta: { name: "jobs", description: "This node's running jobs" },
  args: targetArgs,
  async run({ args }) {
    try {
      const { jobs } = await connect(args).call("jobs");
      if (args.json) return console.log(JSON.stringify(jobs, null, 2));
      console.log(
        table(
          ["ID", "TYPE", "ATTEMPT", "PID", "SLOTS"],
          jobs.map((j) => [j.id, j.type, j.attempt, j.pid ?? "-", j.slots]),
        ),
      );
    } catch (e) {
      fail(e);
    }
  },
});

export const drainCommand = defineCommand({
  meta: { name: "drain", description: "Stop claiming work on a node (kept across restarts); running jobs finish" },
  args: { ...targetArgs, reason: { type: "string", description: "Why (shown in status, peers and why-pending)" } },
  async run({ args }) {
    try {
      const body = args.reason ? { reason: args.reason } : {};
      console.log(JSON.stringify(await connect(args).call("drain", { body })));
    } catch (e) {
      fail(e);
    }
  },
});

export const undrainCommand = defineCommand({
  meta: { name: "undrain", description: "Let a drained node claim work again" },
  args: targetArgs,
  async run({ args }) {
    try {
      console.log(JSON.stringify(await connect(args).call("undrain", { body: {} })));
    } catch (e) {
      fail(e);
    }
  },
});
