import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { exampleClusterToml } from "../../src/cli/init.ts";
import { templateProblems } from "../../src/config/job-template.ts";
import { parseClusterFile } from "../../src/config/load.ts";
import { type JobContext, jobArgv, jobEnv, MAX_PARAM_BYTES, SELF_PROGRAM } from "../../src/work/job-command.ts";

let dir: string;
let ctx: JobContext;
/** The file an injected command would create. */
let pwned: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "p2p-job-params-"));
  ctx = { workId: "item-1", type: "selfplay", attempt: 2, outputDir: dir };
  pwned = join(dir, "pwned");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Payloads that run `touch <pwned>` wherever a value is pasted into a shell script or split on spaces. */
const payloads = () => [
  `1}'; touch ${pwned}; echo '{`,
  `$(touch ${pwned})`,
  `\`touch ${pwned}\``,
  `1" ; touch ${pwned} ; echo "`,
  `a\nb; touch ${pwned}\n*`,
  "   spaces  and\ttabs ",
  "",
];

/** Runs the job as the worker does: argv and environment from the template and the item's config. */
function run(command: string[], config: Record<string, unknown>, templateEnv: Record<string, string> = {}) {
  const proc = Bun.spawnSync(jobArgv(command, config, ctx), { cwd: dir, env: jobEnv(config, ctx, templateEnv) });
  return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() };
}

describe("a parameter reaches the job as exactly one argument or variable, and runs nothing", () => {
  test("through the environment, read by a shell script", () => {
    for (const n of payloads()) {
      const job = run(["/bin/sh", "-c", 'printf %s "$P2P_PARAM_N" > out'], { n });
      expect(job.code).toBe(0);
      expect(readFileSync(join(dir, "out"), "utf8")).toBe(n);
      expect(existsSync(pwned)).toBe(false);
    }
  });

  test('through argv, as a whole "{key}" entry that the script gets as $1', () => {
    for (const n of payloads()) {
      const job = run(["/bin/sh", "-c", 'printf %s "$1" > out; printf %s "$#"', "sh", "{n}"], { n });
      expect(job.stdout).toBe("1");
      expect(readFileSync(join(dir, "out"), "utf8")).toBe(n);
      expect(existsSync(pwned)).toBe(false);
    }
  });

  test("numbers and booleans are written as JSON writes them; objects and arrays reach the environment as JSON", () => {
    const config = { games: 3, ratio: 0.25, fast: false, big: 1e21, opts: { a: [1, "x"] }, list: [1, 2], none: null };
    const job = run(["/usr/bin/env"], config);
    const env = new Map(job.stdout.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(env.get("P2P_PARAM_GAMES")).toBe("3");
    expect(env.get("P2P_PARAM_RATIO")).toBe("0.25");
    expect(env.get("P2P_PARAM_FAST")).toBe("false");
    expect(env.get("P2P_PARAM_BIG")).toBe("1e+21");
    expect(JSON.parse(env.get("P2P_PARAM_OPTS") as string)).toEqual({ a: [1, "x"] });
    expect(env.get("P2P_PARAM_LIST")).toBe("[1,2]");
    expect(env.get("P2P_PARAM_NONE")).toBe("null");
    expect(env.get("P2P_WORK_ID")).toBe("item-1");
    expect(env.get("P2P_JOB_TYPE")).toBe("selfplay");
    expect(env.get("P2P_ATTEMPT")).toBe("2");
    expect(env.get("P2P_OUTPUT_DIR")).toBe(dir);
    expect(jobArgv(["echo", "{games}", "{ratio}", "{fast}"], config, ctx)).toEqual(["echo", "3", "0.25", "false"]);
  });

  test("only the item's own parameters: none inherited from the node, none from keys outside [a-z0-9_]", () => {
    const env = jobEnv({ numGames: 3, "a-b": 1, ok: 1 }, ctx, {}, { PATH: "/bin", P2P_PARAM_STALE: "node's own" });
    expect(env.PATH).toBe("/bin");
    expect(Object.keys(env).filter((k) => k.startsWith("P2P_PARAM_"))).toEqual(["P2P_PARAM_OK"]);
  });

  test("the node's own variables win over the template's and the item's", () => {
    const env = jobEnv({ output_dir: "/etc" }, ctx, { P2P_WORK_ID: "forged", P2P_OUTPUT_DIR: "/etc", MODE: "fast" });
    expect(env.P2P_WORK_ID).toBe("item-1");
    expect(env.P2P_OUTPUT_DIR).toBe(dir);
    expect(env.MODE).toBe("fast");
    expect(jobArgv(["ls", "{output_dir}"], { output_dir: "/etc" }, ctx)).toEqual(["ls", dir]);
  });
});

describe("values that may not reach a process are refused with the key named", () => {
  const argvOf = (config: Record<string, unknown>) => () => jobArgv(["prog", "{n}"], config, ctx);

  test("objects, arrays, null and non-finite numbers cannot stand in argv", () => {
    expect(argvOf({ n: { a: 1 } })).toThrow("config.n stands in the job's argv: expected a string");
    expect(argvOf({ n: [1] })).toThrow("found an array");
    expect(argvOf({ n: null })).toThrow("found null");
    expect(argvOf({ n: Number.POSITIVE_INFINITY })).toThrow("found Infinity");
    expect(argvOf({ n: Number.NaN })).toThrow("found NaN");
  });

  test("a missing key (own keys only: not one of Object's), a NUL, an oversized value", () => {
    expect(argvOf({})).toThrow('needs "n"');
    expect(() => jobArgv(["prog", "{constructor}"], {}, ctx)).toThrow('needs "constructor"');
    expect(argvOf({ n: "a\0b" })).toThrow("config.n: expected no NUL");
    expect(() => jobEnv({ n: "a\0b" }, ctx)).toThrow("config.n: expected no NUL");
    expect(argvOf({ n: "x".repeat(MAX_PARAM_BYTES + 1) })).toThrow(`at most ${MAX_PARAM_BYTES} bytes`);
    expect(() => jobEnv({ n: { s: "x".repeat(MAX_PARAM_BYTES) } }, ctx)).toThrow(`at most ${MAX_PARAM_BYTES} bytes`);
    expect(argvOf({ n: "x".repeat(MAX_PARAM_BYTES) })()).toEqual(["prog", "x".repeat(MAX_PARAM_BYTES)]);
  });

  test("the total of a job's parameters is bounded", () => {
    const config = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "x".repeat(MAX_PARAM_BYTES)]));
    expect(() => jobEnv(config, ctx)).toThrow("bytes of parameters");
  });

  test("an unsafe template is refused at run time too; shell variables and JSON braces pass through untouched", () => {
    expect(() => jobArgv(["sh", "-c", "echo {n}"], { n: 1 }, ctx)).toThrow("argument 2 should be no placeholder");
    expect(() => jobArgv(["prog", "--n={n}"], { n: 1 }, ctx)).toThrow("argument 1 should be {n} only as a whole");
    const literal = `echo "\${n}" {"n": 1}`;
    expect(jobArgv(["sh", "-c", literal], { n: 1 }, ctx)).toEqual(["sh", "-c", literal]);
  });
});

describe("which templates are safe", () => {
  const refused = (command: string[]) => templateProblems(command).map((p) => p.index);

  test("a placeholder in the script or code of a shell or interpreter is refused, wherever the shell stands", () => {
    expect(refused(["sh", "-c", "sleep 1; echo '{\"games\": {games}}'"])).toEqual([2]);
    expect(refused(["/bin/bash", "-lc", "{script}"])).toEqual([2]);
    expect(refused(["bash", "-o", "pipefail", "-e", "-c", "run {n}"])).toEqual([5]);
    expect(refused(["env", "FOO=1", "nice", "/usr/bin/zsh", "-c", "{n}"])).toEqual([5]);
    expect(refused(["fish", "--command", "{n}"])).toEqual([2]);
    expect(refused(["bash", "--rcfile", "rc", "-c", "{n}"])).toEqual([4]);
    expect(refused(["sh", "-c", "--", "{n}"])).toEqual([3]);
    expect(refused(["cmd.exe", "/c", "run.bat", "{n}"])).toEqual([3]);
    expect(refused(["powershell", "-Command", "Start {n}"])).toEqual([2]);
    expect(refused(["python3.11", "-c", "{code}"])).toEqual([2]);
    expect(refused(["node", "--eval", "{code}"])).toEqual([2]);
  });

  test("a placeholder inside a larger string, as the program, or with a name outside [a-z0-9_] is refused", () => {
    expect(refused(["python3", "train.py", "--games={games}"])).toEqual([2]);
    expect(refused(["{program}", "x"])).toEqual([0]);
    expect(refused(["prog", "{numGames}"])).toEqual([1]);
  });

  test("whole entries outside any script, shell variables and JSON braces are safe", () => {
    expect(refused(["sh", "-c", `echo "{\\"n\\": \${P2P_PARAM_N}}" "$1"`, "sh", "{n}"])).toEqual([]);
    expect(refused(["bash", "run.sh", "{n}"])).toEqual([]);
    expect(refused(["python3", "-u", "selfplay.py", "--games", "{games}", "--out", "{output_dir}"])).toEqual([]);
    expect(refused(["sh", "-c", "echo {}", "{a,b}"])).toEqual([]);
  });
});

describe("the shipped templates", () => {
  test("cluster.toml is the init template; each job runs this binary's demo, a value as exactly one argument", () => {
    const shippedPath = resolve(import.meta.dir, "../../cluster.toml");
    const shipped = parseClusterFile(shippedPath);
    expect(Bun.TOML.parse(exampleClusterToml(3, 8770))).toEqual(Bun.TOML.parse(readFileSync(shippedPath, "utf8")));
    expect(Object.keys(shipped.jobs).sort()).toEqual(["bootstrap", "match", "selfplay", "train"]);
    expect(Object.keys(shipped.runs)).toEqual(["c4"]);
    for (const job of Object.values(shipped.jobs)) {
      expect(templateProblems(job.command)).toEqual([]);
      expect(job.command[0]).toBe(SELF_PROGRAM);
      const keys = job.command.flatMap((a) => /^\{([a-z0-9_]+)\}$/.exec(a)?.[1] ?? []);
      const [payload] = payloads();
      const argv = jobArgv(job.command, Object.fromEntries(keys.map((k) => [k, payload])), ctx);
      expect(argv).toHaveLength(job.command.length);
      job.command.forEach((arg, i) => {
        const key = /^\{([a-z0-9_]+)\}$/.exec(arg)?.[1];
        expect(argv[i]).toBe(key === undefined ? arg : key === "output_dir" ? ctx.outputDir : (payload as string));
      });
    }
    expect(existsSync(pwned)).toBe(false);
  });
});
