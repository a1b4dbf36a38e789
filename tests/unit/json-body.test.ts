import { describe, expect, test } from "bun:test";
import { MAX_BODY_DEPTH, parseJsonObject } from "../../src/net/json-body.ts";

async function refusal(text: string): Promise<{ status: number; field?: string }> {
  const result = parseJsonObject(text);
  if (result.ok) return { status: 200 };
  return { status: result.response.status, ...((await result.response.json()) as { field?: string }) };
}

describe("parseJsonObject", () => {
  test("brackets inside strings, escaped quotes included, do not count as nesting", () => {
    const opens = "[".repeat(1_000);
    for (const text of [`{"a":"${opens}"}`, `{"a":"\\"${opens}"}`, `{"a":"\\\\","b":"${opens}"}`]) {
      expect(parseJsonObject(text).ok).toBe(true);
    }
  });

  test(`nesting up to ${MAX_BODY_DEPTH} levels passes, one more is 422 naming body`, async () => {
    const nest = (levels: number) => `{"a":${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}}`;
    expect(parseJsonObject(nest(MAX_BODY_DEPTH)).ok).toBe(true);
    expect(await refusal(nest(MAX_BODY_DEPTH + 1))).toMatchObject({ status: 422, field: "body" });
    // A quote escaped by an even run of backslashes closes its string: what follows is structure again.
    expect(await refusal(`{"a":"\\\\","b":${"[".repeat(100)}${"]".repeat(100)}}`)).toMatchObject({ status: 422 });
  });

  test("non-finite numbers are named by path; 1e308 and long decimals that stay finite pass", async () => {
    expect(await refusal('{"a":{"b":[0,{"c":1e400}]}}')).toMatchObject({ status: 422, field: "body.a.b[1].c" });
    expect(await refusal(`{"n":${"9".repeat(400)}}`)).toMatchObject({ status: 422, field: "body.n" });
    expect(parseJsonObject('{"a":1e308,"b":"1e999","c":1e-999}').ok).toBe(true);
  });
});
