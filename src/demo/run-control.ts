// What every long demo command shares: stopping between units of work on SIGTERM/SIGINT, progress on stderr
// (one rewritten line on a terminal, plain lines otherwise), flags with P2P_* environment fallbacks, and the result line.

export class StopSignal {
  requested = false;
  private readonly onSignal = (): void => {
    this.requested = true;
  };

  constructor() {
    process.on("SIGTERM", this.onSignal);
    process.on("SIGINT", this.onSignal);
  }

  dispose(): void {
    process.off("SIGTERM", this.onSignal);
    process.off("SIGINT", this.onSignal);
  }
}

/** Lets pending events (a signal) run between synchronous pieces of work. */
export function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastAt = 0;
  private lastTenth = -1;

  constructor(private readonly label: string) {}

  update(done: number, total: number, detail = ""): void {
    const now = Date.now();
    const text = `${this.label}: ${done}/${total}${detail ? ` ${detail}` : ""}`;
    if (this.tty) {
      if (now - this.lastAt < 100 && done < total) return;
      process.stderr.write(`\r\x1b[K${text}`);
    } else {
      // Plain lines: at each tenth of the way, and at least every 10 s.
      const tenth = Math.floor((done * 10) / Math.max(total, 1));
      if (tenth === this.lastTenth && now - this.lastAt < 10_000) return;
      this.lastTenth = tenth;
      process.stderr.write(`${text}\n`);
    }
    this.lastAt = now;
  }

  finish(): void {
    if (this.tty && this.lastAt > 0) process.stderr.write("\n");
  }
}

export class UsageError extends Error {}

/**
 * A flag's value, else the first set environment variable among `env` (P2P_PARAM_<KEY> first, then the stage's
 * own variables such as P2P_MODEL): flags win over the environment.
 */
export function param(flag: unknown, key: string, ...env: string[]): string | undefined {
  if (typeof flag === "string" && flag !== "") return flag;
  for (const name of [`P2P_PARAM_${key.toUpperCase()}`, ...env]) {
    const value = process.env[name];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`--${flag} is required`);
  return value;
}

export function intParam(value: string | undefined, flag: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`--${flag} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

export function numberParam(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${flag} must be a non-negative number, got "${value}"`);
  return n;
}

/** The job contract's result line: the last line of stdout, one JSON object. */
export function printResult(result: object): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Runs a command body; usage and runtime errors become one "error: ..." line on stderr and exit code 2 or 1. */
export async function runCommand(body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
}

/** Exit status of a command stopped by SIGTERM: the conventional 128 + 15. */
export const STOPPED_EXIT_CODE = 143;
