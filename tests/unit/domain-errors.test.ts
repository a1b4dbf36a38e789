import { describe, expect, test } from "bun:test";
import { NotLeaderError } from "../../src/consensus/raft.ts";
import { OutcomeUnknownError } from "../../src/consensus/runtime.ts";
import { domainErrorResponse } from "../../src/routes/errors.ts";

const ctx = { leaderHint: () => ({ id: "n2", address: "127.0.0.2:7000", term: 4 }) };

describe("domain errors as HTTP answers", () => {
  test("refused before anything was appended: 421, naming the leader (safe to send again)", async () => {
    const response = domainErrorResponse(new NotLeaderError("n2"), ctx);
    expect(response?.status).toBe(421);
    expect(await response?.json()).toMatchObject({
      error: "not_leader",
      leader: { id: "n2", address: "127.0.0.2:7000" },
    });
  });

  test("appended, then leadership lost: 503 outcome_unknown, retry with the same id, never a 421", async () => {
    const response = domainErrorResponse(
      new OutcomeUnknownError("n2", "leadership lost before the entry was applied"),
      ctx,
    );
    expect(response?.status).toBe(503);
    expect(response?.headers.get("retry-after")).toBe("1");
    const body = (await response?.json()) as { error: string; message: string; leader: unknown };
    expect(body.error).toBe("outcome_unknown");
    expect(body.message).toContain("whether it took effect is unknown: retry with the same id");
    expect(body.leader).toEqual({ id: "n2", address: "127.0.0.2:7000" });
  });
});
