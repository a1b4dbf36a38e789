import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exampleClusterToml } from "../../src/cli/init.ts";
import { resolveTarget } from "../../src/cli/target.ts";

let dir: string;
beforeEach(() => {
  // What the flags name, not the environment of whoever runs the tests.
  for (const name of ["P2P_URL", "P2P_TOKEN", "P2P_CONFIG", "P2P_NODE"]) delete process.env[name];
  dir = mkdtempSync(join(tmpdir(), "p2p-target-"));
  writeFileSync(join(dir, "operator.token"), "t0ken\n");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A cluster file of three nodes, n1 (and n2, with `natFirst`) behind NAT. */
function clusterFile(natFirst = false): string {
  const path = join(dir, "cluster.toml");
  let toml = exampleClusterToml(3, 9300).replace('id = "n1"', 'id = "n1"\nnat = true');
  if (natFirst) toml = toml.replace('id = "n2"', 'id = "n2"\nnat = true');
  writeFileSync(path, toml);
  return path;
}

test("--node names a node behind NAT: its calls go to the first public member, which passes them on", () => {
  const config = clusterFile();
  expect(resolveTarget({ config, node: "n1" })).toEqual({
    url: "http://127.0.0.1:9302",
    token: "t0ken",
    relayTo: "n1",
  });
  expect(resolveTarget({ config, node: "n3" })).toEqual({ url: "http://127.0.0.1:9303", token: "t0ken" });
  // An explicit URL is taken as it is.
  expect(resolveTarget({ config, node: "n1", url: "http://10.0.0.9:1" }).relayTo).toBeUndefined();
});

test("a node behind NAT with no public member in the file is an error naming it", () => {
  const path = join(dir, "cluster.toml");
  writeFileSync(path, exampleClusterToml(1, 9300).replace('id = "n1"', 'id = "n1"\nnat = true'));
  expect(() => resolveTarget({ config: path, node: "n1" })).toThrow(
    /n1 is behind NAT and no member of the file is public/,
  );
  expect(resolveTarget({ config: clusterFile(true), node: "n2" }).url).toBe("http://127.0.0.1:9303");
});
