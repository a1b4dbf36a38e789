import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, requireBinary, waitFor } from "./harness.ts";

// The compiled binary, copied alone into an empty folder, runs every demo command.
let dir: string;
let bin: string;

beforeAll(() => {
  requireBinary();
  dir = mkdtempSync(join(tmpdir(), "demo-int-"));
  bin = join(dir, "p2p-orchestrator");
  copyFileSync(BIN, bin);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a demo command in the folder; returns the exit code and the JSON object on the last stdout line. */
async function demo(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const child = Bun.spawn([bin, "demo", ...args], {
    cwd: dir,
    env: { PATH: "/usr/bin:/bin", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (code !== 0) throw new Error(`demo ${args.join(" ")} exited ${code}: ${stderr}`);
  const last = stdout.trimEnd().split("\n").pop() ?? "";
  return JSON.parse(last) as Record<string, unknown>;
}

describe("demo commands in the compiled binary", () => {
  test("init, selfplay, train, match and analyze each print one JSON result line", async () => {
    const init = await demo(["init", "--out", "models", "--seed", "1"]);
    const gen0 = String(init.model);
    expect(init.sha256).toMatch(/^[0-9a-f]{64}$/);

    // --games comes from the environment, as a job template passes it.
    const selfplay = await demo(["selfplay", "--model", gen0, "--out", "games", "--sims", "8"], {
      P2P_PARAM_GAMES: "2",
    });
    expect(selfplay).toMatchObject({ games: 2, model: init.sha256 });
    const lines = readFileSync(join(dir, "games", (selfplay.files as string[])[0] as string), "utf8")
      .trim()
      .split("\n");
    expect(lines).toHaveLength(2);
    expect(lines.reduce((n, line) => n + (JSON.parse(line) as { moves: string }).moves.length, 0)).toBe(
      selfplay.positions as number,
    );

    const train = await demo(["train", "--games", "games", "--from", gen0, "--out", "candidates", "--steps", "5"]);
    expect(train).toMatchObject({ generation: 1, parent: init.sha256 });
    expect(readdirSync(join(dir, "candidates"))).toEqual([train.model as string]);
    expect(train.samples).toBe(2 * (selfplay.positions as number));
    const loss = train.loss as { policy: number; value: number };
    expect(Number.isFinite(loss.policy) && Number.isFinite(loss.value)).toBe(true);

    const candidate = join("candidates", train.model as string);
    const match = await demo(["match", "--a", candidate, "--b", "mcts:20", "--games", "4", "--sims", "8"]);
    const pairs = match.pairs as number[];
    expect(pairs).toHaveLength(5);
    expect(pairs.reduce((a, b) => a + b, 0)).toBe(2);
    expect((match.wins as number) + (match.draws as number) + (match.losses as number)).toBe(4);

    const analyze = await demo(["analyze", "--model", candidate, "--moves", "4453", "--sims", "16"]);
    expect(analyze.policy as number[]).toHaveLength(7);
    expect(Math.abs(analyze.value as number)).toBeLessThanOrEqual(1);
    const search = analyze.search as { visits: number[]; move: number };
    expect(search.visits.reduce((a, b) => a + b, 0)).toBe(16);
    expect(search.move).toBeGreaterThanOrEqual(1);
  }, 60_000);

  test("SIGTERM during selfplay stops between games and leaves only whole files", async () => {
    await demo(["init", "--out", "sig.model", "--seed", "2"]);
    const out = join(dir, "sig-games");
    const child = Bun.spawn([bin, "demo", "selfplay", "--model", "sig.model", "--games", "100000", "--out", out], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
    });
    let stderr = "";
    void (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    await waitFor(() => stderr.includes("selfplay: 1/"), 20_000, "the first game");
    child.kill("SIGTERM");
    const code = await Promise.race([child.exited, Bun.sleep(5_000).then(() => "still running 5 s after SIGTERM")]);
    expect(code).toBe(143);
    const result = JSON.parse((await new Response(child.stdout).text()).trimEnd().split("\n").pop() ?? "") as {
      games: number;
      stopped: boolean;
      files: string[];
    };
    expect(result.stopped).toBe(true);
    expect(readdirSync(out)).toEqual(result.files);
    const lines = readFileSync(join(out, result.files[0] as string), "utf8")
      .trim()
      .split("\n");
    expect(lines).toHaveLength(result.games);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty("result");
  }, 60_000);
});
