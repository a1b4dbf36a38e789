import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/observability/log.ts";

function capture(level: "debug" | "info") {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(level, { node: "n2" }, (line) => {
    lines.push(JSON.parse(line));
    return true;
  });
  return { log, lines };
}

describe("the logger", () => {
  test("a field named like the line's own keys keeps its value under field.<name>, never the line's", () => {
    const { log, lines } = capture("debug");
    log.info("relaying for a node behind NAT", { node: "n7", level: "x", msg: "y", lane: "bulk" });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "info",
      node: "n2",
      msg: "relaying for a node behind NAT",
      lane: "bulk",
      "field.node": "n7",
      "field.level": "x",
      "field.msg": "y",
    });
  });

  test("lines below the level are not written", () => {
    const { log, lines } = capture("info");
    log.debug("quiet");
    log.warn("loud");
    expect(lines.map((l) => l.msg)).toEqual(["loud"]);
  });
});
