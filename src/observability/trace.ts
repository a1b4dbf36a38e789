import * as v from "valibot";
import { wireNumberSchema } from "../net/bounds.ts";

/** One transition of one state machine instance, with what caused it. */
export const traceRecordSchema = v.object({
  machine: v.string(),
  instance: v.string(),
  from: v.nullable(v.string()),
  to: v.string(),
  event: v.string(),
  cause: v.nullable(v.string()),
  at: wireNumberSchema,
});
export type TraceRecord = v.InferOutput<typeof traceRecordSchema>;
