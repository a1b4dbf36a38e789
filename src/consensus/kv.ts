import { eq, sql } from "drizzle-orm";
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

/** One prepared upsert per database: applying thousands of entries a second must not rebuild the query each time. */
const upserts = new WeakMap<Db, ReturnType<typeof prepareUpsert>>();

function prepareUpsert(db: Db) {
  const row = {
    key: sql.placeholder("key"),
    value: sql.placeholder("value"),
    index: sql.placeholder("index"),
    term: sql.placeholder("term"),
  };
  return db
    .insert(kv)
    .values(row)
    .onConflictDoUpdate({
      target: kv.key,
      set: { value: sql`excluded.value`, index: sql`excluded.idx`, term: sql`excluded.term` },
    })
    .prepare();
}

/** `kv.set`: the replicated key-value register (operator data, tests, benchmarks). */
export const kvSet = defineCommand({
  name: "kv.set",
  payload: kvSetPayload,
  tables: [kv],
  apply(db, payload, ctx) {
    let upsert = upserts.get(db);
    if (!upsert) {
      upsert = prepareUpsert(db);
      upserts.set(db, upsert);
    }
    upsert.run({ key: payload.key, value: payload.value ?? null, index: ctx.index, term: ctx.term });
  },
});

export function readKv(db: Db, key: string): { value: unknown; index: number; term: number } | undefined {
  return db.select().from(kv).where(eq(kv.key, key)).get();
}
