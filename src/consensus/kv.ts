import { eq, sql } from "drizzle-orm";
import * as v from "valibot";
import type { Db } from "../db/client.ts";
import { kv } from "../db/schema.ts";
import { FREE_FORM_DEPTH, freeForm } from "../net/free-form.ts";
import { defineCommand } from "./state-machine.ts";

export const kvKeySchema = v.pipe(v.string(), v.minLength(1), v.maxLength(256));

/** `POST /kv`: the value is free-form JSON, at most 32 levels deep and 64 KiB encoded. */
export const kvSetPayload = v.strictObject({
  key: kvKeySchema,
  value: freeForm({ maxDepth: FREE_FORM_DEPTH, maxBytes: 64 * 1024 }),
});

/**
 * The entry as the log holds it: bounded at the door above, and applied as written, whichever version
 * wrote it (a value an older version took under its own bound is applied by every voter alike).
 */
const kvSetEntry = v.strictObject({ key: kvKeySchema, value: v.unknown() });

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
  payload: kvSetEntry,
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
