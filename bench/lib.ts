/** Small helpers shared by the benchmarks: polling with a deadline, statistics, child-process cleanup. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every `intervalMs` until it holds; throws once `deadlineMs` has passed. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  deadlineMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const end = performance.now() + deadlineMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() >= end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  if (s.length === 0) return Number.NaN;
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const TAIL_CHARS = 8_000;

/** A child in its own process group, with the tail of its stderr kept for error reports. */
export class Child {
  readonly proc: Subprocess<"ignore", "ignore", "pipe">;
  private tail = "";
  private readonly drained: Promise<void>;

  constructor(
    readonly name: string,
    cmd: string[],
    cwd?: string,
  ) {
    this.proc = Bun.spawn(cmd, { cwd, stdin: "ignore", stdout: "ignore", stderr: "pipe", detached: true });
    children.add(this);
    this.drained = this.drain();
  }

  private async drain(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stderr) {
      this.tail = (this.tail + decoder.decode(chunk, { stream: true })).slice(-TAIL_CHARS);
    }
  }

  get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /** SIGKILLs the whole process group. Safe to call more than once. */
  kill(): void {
    if (this.exited) return;
    try {
      process.kill(-this.proc.pid, "SIGKILL");
    } catch {
      this.proc.kill("SIGKILL");
    }
  }

  async stop(): Promise<void> {
    this.kill();
    await this.proc.exited;
    children.delete(this);
  }

  /** Why the child died, with its last stderr output. */
  async describeExit(): Promise<string> {
    await Promise.race([this.drained, sleep(500)]);
    const how = this.proc.signalCode ?? `exit code ${this.proc.exitCode}`;
    return `${this.name} exited (${how})${this.tail.trim() ? `; stderr:\n${this.tail.trim()}` : " with no stderr"}`;
  }
}

const children = new Set<Child>();

const tempDirs = new Set<string>();

/** A fresh temp dir, removed by removeTempDir or, at the latest, when the process exits. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Kills every child's process group and removes the temp dirs; synchronous, so it runs in an exit handler. */
export function cleanupAll(): void {
  for (const c of children) c.kill();
  for (const dir of tempDirs) removeTempDir(dir);
}

/** Throws, with the child's stderr, if any of `procs` is no longer running. */
export async function assertRunning(procs: readonly Child[]): Promise<void> {
  const dead = procs.find((c) => c.exited);
  if (dead) throw new Error(await dead.describeExit());
}

let cleanupInstalled = false;
/** Kills every child's process group when this process exits, is interrupted or terminated. */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on("exit", cleanupAll);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const) {
    process.on(signal, () => {
      cleanupAll();
      process.exit(code);
    });
  }
}

/** The `p`-th percentile (0..100, nearest rank) of `xs`; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
}

/** A short label for a failed request, for error tallies: "timeout", a fetch error code, or the error's name. */
export function errorLabel(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === "TimeoutError" || e.name === "AbortError") return "timeout";
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : e.name;
}

export interface ClosedLoopResult {
  /** Latency (ms) of every operation that started after warm-up and succeeded. */
  latencies: number[];
  /** Operations that started after warm-up and failed, by error label. */
  errors: Map<string, number>;
  /** From the end of warm-up until the last loop had finished its last operation. */
  elapsedMs: number;
}

/**
 * `concurrency` closed loops, each calling `op(worker, n)` again as soon as the previous call returns,
 * for `warmupMs` and then `ms`. `op` returns null on success, else a short error label. Only
 * operations started after warm-up count (`counted` tells `op` which ones do, for its own tallies); no
 * new operation starts after the end, and the elapsed time runs until the last one has returned.
 */
export async function closedLoop(
  concurrency: number,
  warmupMs: number,
  ms: number,
  op: (worker: number, n: number, counted: boolean) => Promise<string | null>,
): Promise<ClosedLoopResult> {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const start = performance.now() + warmupMs;
  const end = start + ms;
  const loop = async (w: number) => {
    for (let n = 0; performance.now() < end; n++) {
      const t0 = performance.now();
      const error = await op(w, n, t0 >= start);
      if (t0 < start) continue;
      if (error === null) latencies.push(performance.now() - t0);
      else errors.set(error, (errors.get(error) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => loop(w)));
  return { latencies, errors, elapsedMs: performance.now() - start };
}
