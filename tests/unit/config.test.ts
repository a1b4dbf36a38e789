import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureSecrets, exampleClusterToml, writeSecretFile } from "../../src/cli/init.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { envOverrides, loadNodeConfig, mergeOverrides, parseClusterFile } from "../../src/config/load.ts";
import { deriveTiming, electionWindow } from "../../src/config/timing.ts";

const PORT = 9100;
/** The example file for three nodes on 127.0.0.1:9101..9103, as `init` writes it. */
const EXAMPLE = exampleClusterToml(3, PORT);

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-config-test-"));
  path = join(dir, "cluster.toml");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a cluster file plus valid secret and token files (without parsing the file, which may be broken). */
function writeCluster(text: string): string {
  writeFileSync(path, text);
  writeSecretFile(join(dir, "cluster.secret"), 32);
  writeSecretFile(join(dir, "operator.token"), 24);
  return path;
}

/** Replaces exactly one occurrence, so a test cannot silently stop changing the file. */
function edit(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`expected exactly one ${JSON.stringify(from)}`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** Like `edit`, inside the `index`-th [[nodes]] entry only. */
function editNode(text: string, index: number, from: string, to: string): string {
  const parts = text.split("[[nodes]]");
  const part = parts[index + 1];
  if (part === undefined) throw new Error(`no [[nodes]] entry ${index}`);
  parts[index + 1] = edit(part, from, to);
  return parts.join("[[nodes]]");
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw new Error(`expected a ConfigError, got ${String(e)}`);
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

function expectMessage(err: ConfigError, ...fragments: string[]): void {
  for (const f of fragments) expect(err.message).toContain(f);
  expect(err.problems.length).toBeGreaterThan(0);
}

describe("a valid cluster file", () => {
  test("the example written by init loads, with secrets created by ensureSecrets", () => {
    writeFileSync(path, EXAMPLE);
    const created = ensureSecrets(path);
    expect(created.sort()).toEqual([join(dir, "cluster.secret"), join(dir, "operator.token")].sort());
    expect(ensureSecrets(path)).toEqual([]); // idempotent

    const config = loadNodeConfig(path, { node: "n2" });
    expect(config.configPath).toBe(path);
    expect(config.clusterName).toBe("local");
    expect(config.nodeId).toBe("n2");
    expect(config.address).toBe(`127.0.0.1:${PORT + 2}`);
    expect(config.listenHost).toBe("127.0.0.1");
    expect(config.listenPort).toBe(PORT + 2);
    expect(config.voter).toBe(true);
    expect(config.capabilities).toEqual(["bootstrap", "selfplay", "train", "match"]);
    expect(config.seeds).toEqual([`127.0.0.1:${PORT + 1}`, `127.0.0.1:${PORT + 3}`]);
    expect(config.dataDir).toBe(join(dir, ".data", "n2"));
    expect(config.secret.length).toBeGreaterThanOrEqual(32);
    expect(config.token.length).toBeGreaterThanOrEqual(16);
    expect(config.timing).toEqual(deriveTiming("lan"));
    expect(config.logLevel).toBe("info");
    expect(config.configuredNodes.map((n) => n.id)).toEqual(["n1", "n2", "n3"]);
  });

  test("without --node the first listed node is used; a relative config path resolves to absolute", () => {
    writeCluster(EXAMPLE);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const config = loadNodeConfig("cluster.toml");
      expect(config.nodeId).toBe("n1");
      expect(config.configPath).toBe(path);
      expect(config.dataDir).toBe(join(dir, ".data", "n1"));
    } finally {
      process.chdir(cwd);
    }
  });

  test("defaults: port 8770, listen from address, optional keys, explicit seeds without self", () => {
    writeCluster(`[cluster]
name = "c"
seeds = ["10.0.0.1", "10.0.0.2:9000"]
data_dir = "/var/tmp/p2p-{id}-state"

[[nodes]]
id = "a"
address = "10.0.0.1"
listen = "0.0.0.0:8770"
slots = 3
nat = true

[[nodes]]
id = "b"
address = "10.0.0.2:9000"
data_dir = "b-state"
`);
    const a = loadNodeConfig(path, { node: "a" });
    expect(a.address).toBe("10.0.0.1:8770");
    expect(a.listenHost).toBe("0.0.0.0");
    expect(a.listenPort).toBe(8770);
    expect(a.voter).toBe(false);
    expect(a.capabilities).toEqual([]);
    expect(a.slots).toBe(3);
    expect(a.nat).toBe(true);
    expect(a.seeds).toEqual(["10.0.0.2:9000"]);
    expect(a.dataDir).toBe("/var/tmp/p2p-a-state");
    expect(a.timing).toEqual(deriveTiming("lan")); // the default profile
    expect(a.logLevel).toBe("info");

    const b = loadNodeConfig(path, { node: "b" });
    expect(b.listenHost).toBe("10.0.0.2");
    expect(b.listenPort).toBe(9000);
    expect(b.seeds).toEqual(["10.0.0.1:8770"]);
    expect(b.dataDir).toBe(join(dir, "b-state")); // per-node data_dir, relative to the toml
  });

  test('timing = "wan" loads and derives the wan profile', () => {
    writeCluster(edit(EXAMPLE, 'timing = "lan"', 'timing = "wan"'));
    const config = loadNodeConfig(path);
    expect(config.timing.profile).toBe("wan");
    expect(config.timing.periodMs).toBe(2_000);
    expect(config.timing.suspicionTimeoutMs).toBe(20_000);
  });

  test("the lan profile derives its deadlines from the base values", () => {
    const lan = deriveTiming("lan");
    expect(lan.suspicionTimeoutMs).toBe(lan.periodMs * lan.suspicionPeriods);
    expect(lan.probeTimeoutMs * 2).toBeLessThan(lan.probeIntervalMs);
  });

  test("the repo's committed cluster.toml parses (README quick-start)", () => {
    const file = parseClusterFile(resolve(import.meta.dir, "../../cluster.toml"));
    expect(file.nodes.map((n) => n.id)).toEqual(["n1", "n2", "n3"]);
    expect(file.nodes.map((n) => n.address)).toEqual(["127.0.0.1:8771", "127.0.0.1:8772", "127.0.0.1:8773"]);
    expect(file.cluster.timing).toBe("lan");
  });
});

describe("configuration errors name the file, the key, the expectation and what was found", () => {
  test("a missing file says so and suggests init", () => {
    const err = configError(() => parseClusterFile(path));
    expectMessage(err, path, "file not found", "init");
  });

  test("invalid TOML", () => {
    writeCluster(`${EXAMPLE}\n[[[broken\n`);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "not valid TOML");
  });

  test('wrong type: voter = "yes"', () => {
    writeCluster(editNode(EXAMPLE, 0, "voter = true", 'voter = "yes"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[0].voter", "boolean", '"yes"');
    expect(err.problems).toHaveLength(1);
  });

  test("wrong type deeper in the file names the right node", () => {
    writeCluster(editNode(editNode(EXAMPLE, 0, "# slots = 4", "slots = 2"), 2, "# slots = 4", 'slots = "four"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[2].slots", "number", '"four"');
  });

  test("unknown key in [cluster]", () => {
    writeCluster(edit(EXAMPLE, 'name = "local"', 'name = "local"\nnmae = "x"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "cluster.nmae", "unknown key");
  });

  test("unknown key in a node", () => {
    writeCluster(edit(EXAMPLE, 'id = "n2"', 'id = "n2"\nvotr = true'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[1].votr", "unknown key");
  });

  test("bad address", () => {
    writeCluster(edit(EXAMPLE, `address = "127.0.0.1:${PORT + 1}"`, 'address = "not an address!"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[0].address", "host:port", '"not an address!"');
  });

  test("port out of range", () => {
    writeCluster(edit(EXAMPLE, `address = "127.0.0.1:${PORT + 3}"`, 'address = "127.0.0.1:99999"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[2].address", "port between 1 and 65535", "99999");
  });

  test("duplicate node ids", () => {
    writeCluster(edit(EXAMPLE, 'id = "n2"', 'id = "n1"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes", "unique");
  });

  test("duplicate node addresses", () => {
    writeCluster(edit(EXAMPLE, `address = "127.0.0.1:${PORT + 2}"`, `address = "127.0.0.1:${PORT + 1}"`));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes", "unique node addresses", `duplicated: 127.0.0.1:${PORT + 1}`);
  });

  test("empty nodes list", () => {
    writeCluster(`nodes = []\n\n[cluster]\nname = "local"\n`);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes", "at least one [[nodes]] entry", "found 0");
  });

  test("no nodes at all", () => {
    writeCluster(`[cluster]\nname = "local"\n`);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes");
  });

  test("bad timing picklist", () => {
    writeCluster(edit(EXAMPLE, 'timing = "lan"', 'timing = "fast"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "cluster.timing", '"lan"', '"wan"', '"fast"');
  });

  test("bad node id", () => {
    writeCluster(edit(EXAMPLE, 'id = "n3"', 'id = "-n3"'));
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "nodes[2].id", "node id", '"-n3"');
  });

  test("several problems are all reported, one line each", () => {
    writeCluster(editNode(edit(EXAMPLE, 'timing = "lan"', 'timing = "fast"'), 0, "voter = true", 'voter = "yes"'));
    const err = configError(() => loadNodeConfig(path));
    expect(err.problems).toHaveLength(2);
    expect(err.message.split("\n")).toHaveLength(2);
    for (const p of err.problems) expect(p.startsWith(`${path}: `)).toBe(true);
  });

  test("a job parameter inside a shell script is refused, naming the argument and the variable to read", () => {
    writeCluster(
      edit(
        EXAMPLE,
        `command = ["p2p-orchestrator", "demo", "selfplay",`,
        `command = ["sh", "-c", "sleep 1; echo '{\\"games\\": {games}}'"]\n# `,
      ),
    );
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "jobs.selfplay.command[2]", 'the script of "sh -c"', "P2P_PARAM_GAMES", "{games}");
    expect(err.problems).toHaveLength(1);
  });

  test("a job parameter inside a larger argument, or as the program, is refused", () => {
    writeCluster(
      edit(
        EXAMPLE,
        `command = ["p2p-orchestrator", "demo", "selfplay",`,
        `command = ["{program}", "--games={games}", "{games}"]\n# `,
      ),
    );
    const err = configError(() => loadNodeConfig(path));
    expect(err.problems).toHaveLength(2);
    expectMessage(err, "jobs.selfplay.command[0]: expected a program, not a placeholder");
    expectMessage(err, "jobs.selfplay.command[1]: expected {games} only as a whole argv entry", '"--games={games}"');
  });

  test("missing secret file names cluster.secret_file and suggests init", () => {
    writeFileSync(path, EXAMPLE);
    writeSecretFile(join(dir, "operator.token"), 24);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "cluster.secret_file", join(dir, "cluster.secret"), "init");
  });

  test("short secret says it expected at least 32 characters", () => {
    writeFileSync(path, EXAMPLE);
    writeFileSync(join(dir, "cluster.secret"), "too-short\n", { mode: 0o600 });
    writeSecretFile(join(dir, "operator.token"), 24);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "cluster.secret_file", "at least 32 characters", "found 9");
  });

  test("missing token file names cluster.token_file", () => {
    writeFileSync(path, EXAMPLE);
    writeSecretFile(join(dir, "cluster.secret"), 32);
    const err = configError(() => loadNodeConfig(path));
    expectMessage(err, path, "cluster.token_file", "init");
  });
});

describe("overrides: flags win over env, env wins over the file", () => {
  test("mergeOverrides: the first layer that defines a key wins, undefined never overrides", () => {
    const flags = { node: "n3", dataDir: undefined, timing: "wan" };
    const env = { node: "n2", dataDir: "/env/dir", timing: "lan", logLevel: "debug" };
    expect(mergeOverrides(flags, env)).toEqual({ node: "n3", dataDir: "/env/dir", timing: "wan", logLevel: "debug" });
    expect(mergeOverrides({}, env)).toEqual(env);
    expect(mergeOverrides(flags, {})).toEqual({ node: "n3", timing: "wan" });
  });

  test("envOverrides reads P2P_* variables and splits P2P_SEEDS", () => {
    expect(
      envOverrides({
        P2P_NODE: "n2",
        P2P_DATA_DIR: "/d",
        P2P_ADDRESS: "10.0.0.5:1",
        P2P_LISTEN: "0.0.0.0:1",
        P2P_SEEDS: " 10.0.0.1:8770, ,10.0.0.2 ,",
        P2P_TIMING: "wan",
        P2P_LOG_LEVEL: "warn",
        UNRELATED: "x",
      }),
    ).toEqual({
      node: "n2",
      dataDir: "/d",
      address: "10.0.0.5:1",
      listen: "0.0.0.0:1",
      seeds: ["10.0.0.1:8770", "10.0.0.2"],
      timing: "wan",
      logLevel: "warn",
    });
    expect(envOverrides({ P2P_SEEDS: " , " }).seeds).toBeUndefined();
    expect(envOverrides({})).toEqual({
      node: undefined,
      dataDir: undefined,
      address: undefined,
      listen: undefined,
      seeds: undefined,
      timing: undefined,
      logLevel: undefined,
    });
  });

  test("node, dataDir, seeds and log level: flag > env > file", () => {
    writeCluster(EXAMPLE);
    const env = envOverrides({
      P2P_NODE: "n2",
      P2P_DATA_DIR: join(dir, "from-env"),
      P2P_SEEDS: "10.9.9.9:1",
      P2P_LOG_LEVEL: "warn",
    });

    const fileOnly = loadNodeConfig(path, mergeOverrides({}, envOverrides({})));
    expect(fileOnly.nodeId).toBe("n1");
    expect(fileOnly.dataDir).toBe(join(dir, ".data", "n1"));
    expect(fileOnly.timing.profile).toBe("lan");
    expect(fileOnly.logLevel).toBe("info");

    const envOnly = loadNodeConfig(path, mergeOverrides({}, env));
    expect(envOnly.nodeId).toBe("n2");
    expect(envOnly.address).toBe(`127.0.0.1:${PORT + 2}`);
    expect(envOnly.dataDir).toBe(join(dir, "from-env"));
    expect(envOnly.seeds).toEqual(["10.9.9.9:1"]);
    expect(envOnly.logLevel).toBe("warn");

    const flags = { node: "n3", dataDir: join(dir, "from-flag"), seeds: ["10.8.8.8"], logLevel: "error" };
    const flagged = loadNodeConfig(path, mergeOverrides(flags, env));
    expect(flagged.nodeId).toBe("n3");
    expect(flagged.dataDir).toBe(join(dir, "from-flag"));
    expect(flagged.seeds).toEqual(["10.8.8.8:8770"]);
    expect(flagged.logLevel).toBe("error");
  });

  test("timing: flag > env > file (observed through which value gets validated)", () => {
    writeCluster(EXAMPLE);
    const env = envOverrides({ P2P_TIMING: "from-env" });
    expect(loadNodeConfig(path, mergeOverrides({}, envOverrides({}))).timing.profile).toBe("lan");
    expectMessage(
      configError(() => loadNodeConfig(path, mergeOverrides({}, env))),
      "--timing / P2P_TIMING",
      '"from-env"',
    );
    const both = configError(() => loadNodeConfig(path, mergeOverrides({ timing: "from-flag" }, env)));
    expectMessage(both, "--timing / P2P_TIMING", '"from-flag"');
    expect(loadNodeConfig(path, mergeOverrides({ timing: "wan" }, env)).timing.profile).toBe("wan");
    expect(both.message).not.toContain("from-env");
    expect(loadNodeConfig(path, mergeOverrides({ timing: "lan" }, env)).timing).toEqual(deriveTiming("lan"));
  });

  test('listen = "none" binds nothing, and only behind NAT', () => {
    const behind = editNode(EXAMPLE, 2, "voter = true", 'voter = false\nnat = true\nlisten = "none"');
    writeCluster(behind);
    const quiet = loadNodeConfig(path, { node: "n3" });
    expect(quiet.listenPort).toBeNull();
    expect(quiet.nat).toBe(true);
    writeCluster(editNode(EXAMPLE, 2, "voter = true", 'voter = false\nlisten = "none"'));
    expectMessage(
      configError(() => loadNodeConfig(path, { node: "n3" })),
      "listen of n3",
      "only with nat = true",
    );
  });

  test("address and listen overrides", () => {
    writeCluster(EXAMPLE);
    const config = loadNodeConfig(path, { node: "n1", address: "192.168.1.5", listen: "0.0.0.0:7000" });
    expect(config.address).toBe("192.168.1.5:8770");
    expect(config.listenHost).toBe("0.0.0.0");
    expect(config.listenPort).toBe(7000);
    expect(config.voter).toBe(true); // still n1's entry
    // n1's own file address is no longer self, so it stays a seed
    expect(config.seeds).toEqual([`127.0.0.1:${PORT + 1}`, `127.0.0.1:${PORT + 2}`, `127.0.0.1:${PORT + 3}`]);
  });

  test("an unknown --node without --address errors, listing the known ids", () => {
    writeCluster(EXAMPLE);
    const err = configError(() => loadNodeConfig(path, { node: "n9" }));
    expectMessage(err, path, '"n9"', "--address", "n1, n2, n3");
  });

  test("an unknown --node with an address joins as a non-voter", () => {
    writeCluster(EXAMPLE);
    const config = loadNodeConfig(path, { node: "n9", address: "10.0.0.9:9999" });
    expect(config.nodeId).toBe("n9");
    expect(config.address).toBe("10.0.0.9:9999");
    expect(config.listenHost).toBe("10.0.0.9");
    expect(config.listenPort).toBe(9999);
    expect(config.voter).toBe(false);
    expect(config.capabilities).toEqual([]);
    expect(config.seeds).toEqual([`127.0.0.1:${PORT + 1}`, `127.0.0.1:${PORT + 2}`, `127.0.0.1:${PORT + 3}`]);
    expect(config.dataDir).toBe(join(dir, ".data", "n9"));
  });

  test("bad override values are ConfigErrors naming what was overridden and the bad value", () => {
    writeCluster(EXAMPLE);
    expectMessage(
      configError(() => loadNodeConfig(path, { node: "bad id!" })),
      "--node / P2P_NODE",
      "node id",
      '"bad id!"',
    );
    expectMessage(
      configError(() => loadNodeConfig(path, { timing: "fast" })),
      "--timing / P2P_TIMING",
      '"fast"',
    );
    expectMessage(
      configError(() => loadNodeConfig(path, { address: "no good" })),
      "--address / P2P_ADDRESS",
      '"no good"',
    );
    expectMessage(
      configError(() => loadNodeConfig(path, { seeds: ["10.0.0.1", "x y"] })),
      "--seeds / P2P_SEEDS",
      '"x y"',
    );
    expectMessage(
      configError(() => loadNodeConfig(path, { logLevel: "loud" })),
      "--log-level / P2P_LOG_LEVEL",
      '"loud"',
    );
  });
});

describe("election window from measured round trips", () => {
  test("at least ten voter round trips, never below the profile, lease untouched", () => {
    const lan = deriveTiming("lan");
    expect(electionWindow(lan, [])).toEqual({ minMs: lan.electionMinMs, maxMs: lan.electionMinMs * 2 });
    expect(electionWindow(lan, [1, 3, 2]).minMs).toBe(lan.electionMinMs);
    expect(electionWindow(lan, [20, 180]).minMs).toBe(1_800);
    const wan = deriveTiming("wan");
    expect(electionWindow(wan, [350]).minMs).toBe(3_500);
    expect(wan.leaseMs).toBeLessThan(wan.electionMinMs);
  });
});
