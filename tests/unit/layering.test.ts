import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

/**
 * The architecture's import rules (docs/ARCHITECTURE.md), checked on the source: no import cycles, nothing
 * below the operator surface imports it, the ground floor stays on the ground, and the pure decisions load
 * no I/O module, however indirectly.
 */

const SRC = resolve(import.meta.dir, "../../src");

interface Import {
  /** A path relative to src/ (with its .ts) for our modules, the specifier for packages and builtins. */
  target: string;
  typeOnly: boolean;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)(\s+type\b)?[^;]*?\bfrom\s+["']([^"']+)["']/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(join(SRC, file), "utf8");
  return [...text.matchAll(IMPORT)].map((m) => {
    const spec = m[2] as string;
    const target = spec.startsWith(".") ? relative(SRC, resolve(dirname(join(SRC, file)), spec)) : spec;
    return { target, typeOnly: m[1] !== undefined };
  });
}

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") && !path.endsWith(".d.ts") ? [relative(SRC, path)] : [];
  });
}

const graph = new Map(sourceFiles().map((f) => [f, importsOf(f)]));

/** One import cycle among our modules, as the path around it, or null. */
function findCycle(edges: ReadonlyMap<string, readonly string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === "done") return null;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

const ours = (i: Import) => graph.has(i.target);
const topOf = (file: string) => file.split("/")[0] as string;

describe("import rules", () => {
  test("the sources are found and their imports read", () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("node/node.ts")?.some((i) => i.target === "consensus/runtime.ts")).toBe(true);
  });

  test("the cycle finder finds a cycle, and none where there is none", () => {
    const edges = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
    ]);
    expect(findCycle(edges)).toEqual(["a", "b", "c", "a"]);
    expect(findCycle(new Map([...edges, ["c", []]]))).toBeNull();
  });

  test("no module imports itself back, not even for a type", () => {
    const edges = new Map([...graph].map(([f, is]) => [f, is.filter(ours).map((i) => i.target)]));
    expect(findCycle(edges)).toBeNull();
  });

  test("nothing below the operator surface imports it (cli, routes, ui, client, node, main)", () => {
    const upper = new Set(["cli", "routes", "ui", "client", "node", "main.ts"]);
    const upward = [...graph].flatMap(([f, is]) =>
      upper.has(topOf(f))
        ? []
        : is.filter((i) => ours(i) && upper.has(topOf(i.target))).map((i) => `${f} -> ${i.target}`),
    );
    expect(upward).toEqual([]);
  });

  test("the ground floor (src/shared) imports only itself and the wire bounds and sync schemas", () => {
    const allowed = (t: string) => t.startsWith("shared/") || t === "net/bounds.ts" || t === "sync/model.ts";
    const found = [...graph].flatMap(([f, is]) =>
      f.startsWith("shared/") ? is.filter((i) => ours(i) && !allowed(i.target)).map((i) => `${f} -> ${i.target}`) : [],
    );
    expect(found).toEqual([]);
  });

  test("the pure decisions load no I/O module (files, processes, SQLite, the network), however indirectly", () => {
    const pure = [
      ...[...graph.keys()].filter((f) => f.startsWith("machines/")),
      "consensus/raft.ts",
      "consensus/raft-log.ts",
      "consensus/hints.ts",
      "membership/swim.ts",
      "work/claim-decision.ts",
      "work/placement.ts",
      "sync/plan.ts",
      "sync/piece-choice.ts",
      "runs/plan.ts",
      "runs/trigger.ts",
      "runs/populator.ts",
      "eval/sprt.ts",
      "eval/elo.ts",
      "net/relay/reachability.ts",
      "net/relay/choice.ts",
    ];
    const io = /^(node:|bun:|drizzle-orm)/;
    const found: string[] = [];
    for (const start of pure) {
      expect(graph.has(start)).toBe(true);
      const seen = new Set<string>();
      const stack = [start];
      while (stack.length > 0) {
        const file = stack.pop() as string;
        if (seen.has(file)) continue;
        seen.add(file);
        for (const i of graph.get(file) ?? []) {
          if (i.typeOnly) continue;
          if (ours(i)) stack.push(i.target);
          else if (io.test(i.target)) found.push(`${start} loads ${i.target} through ${file}`);
        }
      }
    }
    expect(found).toEqual([]);
  });
});
