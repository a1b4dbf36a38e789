import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requireBinary, TestCluster, waitFor } from "./harness.ts";

/** The job writes what it got as $P2P_PARAM_N and as its one positional argument, and prints how many it got. */
const ECHO_JOB = `[jobs.echo]
command = ["sh", "-c", 'printf %s "$P2P_PARAM_N" > "$P2P_OUTPUT_DIR/env.txt"; printf %s "$1" > "$P2P_OUTPUT_DIR/argv.txt"; echo "{\\"argc\\": $#}"', "sh", "{n}"]
timeout = "1m"
`;

describe("a job parameter that is a shell injection reaches the job as data, through the real binary", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(1, { voters: 1, capabilities: () => ["echo"], extraToml: ECHO_JOB });
    cluster.startAll();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test(
    "the value round-trips exactly as one argument and one variable; nothing it names runs",
    () =>
      cluster.withLogs(async () => {
        const pwned = join(cluster.dir, "pwned");
        const n = `1}'; touch ${pwned}; echo '{ $(touch ${pwned}) \`touch ${pwned}\` "; touch ${pwned}; "`;
        await waitFor(
          async () =>
            (await cluster.post("n1", "/work", { id: "inject-1", type: "echo", config: { n } })).status === 200,
          15_000,
          "the single node accepts the item",
        );
        const item = await waitFor(
          async () => {
            const got = (await cluster.get("n1", "/work/inject-1")) as {
              state: string;
              context: { result: unknown; artifacts: string[] };
            };
            return got.state === "completed" || got.state === "failed" ? got : undefined;
          },
          15_000,
          "the item ends",
        );
        expect(item.state).toBe("completed");
        expect(item.context.result).toEqual({ argc: 1 });
        const file = (name: string) => item.context.artifacts.find((a) => a.endsWith(`/${name}`)) as string;
        expect(readFileSync(file("argv.txt"), "utf8")).toBe(n);
        expect(readFileSync(file("env.txt"), "utf8")).toBe(n);
        expect(existsSync(pwned)).toBe(false);
      }),
    30_000,
  );
});

describe("a cluster file that puts a parameter inside a shell script", () => {
  let cluster: TestCluster;

  beforeAll(() => {
    requireBinary();
    cluster = new TestCluster(1, {
      voters: 1,
      extraToml: `[jobs.selfplay]\ncommand = ["sh", "-c", "sleep 1; echo '{\\"games\\": {games}}'"]\n`,
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test("is refused at start with exit code 2, naming the key and the variable to read instead", () => {
    const start = Bun.spawnSync([BIN, "start", "--config", cluster.configPath, "--node", "n1"], { timeout: 10_000 });
    const stderr = start.stderr.toString();
    expect(start.exitCode).toBe(2);
    expect(stderr).toContain(`${cluster.configPath}: jobs.selfplay.command[2]: expected no placeholder`);
    expect(stderr).toContain("P2P_PARAM_GAMES");
  });
});
