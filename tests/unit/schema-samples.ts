import * as v from "valibot";

/**
 * Valid values for a route's Valibot schema, best effort: one per option of every variant or union
 * (so a fuzz starting from them reaches each message type's fields), optional fields present, and
 * one without each optional field of an object.
 * Strings and numbers behind a pipe are the first candidate the pipe accepts.
 */
type AnySchema = v.GenericSchema & {
  type: string;
  entries?: Record<string, AnySchema>;
  wrapped?: AnySchema;
  item?: AnySchema;
  items?: AnySchema[];
  options?: unknown[];
  literal?: unknown;
  key?: AnySchema | string;
  value?: AnySchema;
  getter?: () => AnySchema;
};

const STRINGS = ["x1", "export", "models", "a", "k", "1.1.0", "127.0.0.1:9", "10s", "0".repeat(64), ""];
const NUMBERS = [0, 1, 2, 100, 0.5, 1_000];

export function samples(schema: v.GenericSchema): unknown[] {
  const built = build(schema as AnySchema);
  const valid = built.filter((value) => v.is(schema, value));
  if (valid.length > 0) return valid;
  // A pipe over the whole (a check on a union, say): the first plain candidate it accepts.
  const candidate = first([...STRINGS, ...NUMBERS], schema as AnySchema);
  return candidate === undefined ? built : [candidate];
}

function build(s: AnySchema): unknown[] {
  switch (s.type) {
    case "object":
    case "strict_object":
    case "loose_object": {
      const perKey = Object.entries(s.entries ?? {}).map(([key, entry]) => [key, samples(entry)] as const);
      const count = Math.max(1, ...perKey.map(([, values]) => values.length));
      const full = Array.from({ length: count }, (_, i) =>
        Object.fromEntries(perKey.map(([key, values]) => [key, values[i % values.length]])),
      );
      // One more per optional key, without it: an optional id, say, would otherwise tie every sample to one item.
      const optional = Object.entries(s.entries ?? {}).filter(([, entry]) => OPTIONAL.has(entry.type));
      return [...full, ...optional.map(([key]) => omit(full[0] as Record<string, unknown>, key))];
    }
    case "optional":
    case "nullable":
    case "nullish":
    case "exact_optional":
      return samples(s.wrapped as AnySchema);
    case "array":
      return samples(s.item as AnySchema).map((item) => [item]);
    case "tuple":
    case "strict_tuple":
      return [(s.items ?? []).map((item) => samples(item)[0])];
    case "record": {
      const key = first(STRINGS, s.key as AnySchema) ?? "k";
      return samples(s.value as AnySchema).map((value) => ({ [key as string]: value }));
    }
    case "variant":
    case "union":
      return (s.options as AnySchema[]).flatMap((option) => samples(option));
    case "picklist":
      return [(s.options as unknown[])[0]];
    case "literal":
      return [s.literal];
    case "lazy":
      return samples((s.getter as () => AnySchema)());
    case "string":
      return [first(STRINGS, s) ?? "x"];
    case "number":
      return [first(NUMBERS, s) ?? 1];
    case "boolean":
      return [false];
    case "unknown":
    case "any":
      return [{ n: 1 }];
    default:
      return [null];
  }
}

const OPTIONAL = new Set(["optional", "exact_optional", "nullish"]);

function omit(value: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _, ...rest } = value;
  return rest;
}

function first(candidates: unknown[], schema: AnySchema): unknown {
  return candidates.find((candidate) => v.is(schema, candidate));
}
