import { eq } from "drizzle-orm";
import * as v from "valibot";
import type { Db } from "../db/client.ts";
import { kv } from "../db/schema.ts";
import { defineCommand } from "./state-machine.ts";

export const kvKeySchema = v.pipe(v.string(), v.minLength(1), v.maxLength(256));

export const kvSetPayload = v.strictObject({
  key: kvKeySchema,
  value: v.pipe(
    v.unknown(),
    v.check((x) => JSON.stringify(x ?? null).length <= 64 * 1024, "a JSON value of at most 64 KiB"),
  ),
});

/** `kv.set`: the replicated key-value register (operator data, tests, benchmarks). */
export const kvSet = defineCommand({
  name: "kv.set",
  payload: kvSetPayload,
  tables: [kv],
  apply(tx, payload, ctx) {
    const row = { key: payload.key, value: payload.value ?? null, index: ctx.index, term: ctx.term };
    tx.insert(kv).values(row).onConflictDoUpdate({ target: kv.key, set: row }).run();
  },
});

export function readKv(db: Db, key: string): { value: unknown; index: number; term: number } | undefined {
  return db.select().from(kv).where(eq(kv.key, key)).get();
}
