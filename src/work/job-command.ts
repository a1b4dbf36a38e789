import {
  isBuiltinPlaceholder,
  PARAM_KEY,
  paramEnvName,
  templateProblems,
  WHOLE_PLACEHOLDER,
} from "../config/job-template.ts";

/** Largest parameter value, in bytes, that reaches a job's argv or environment (Linux allows 128 KiB per string). */
export const MAX_PARAM_BYTES = 64 * 1024;
/** Largest total of the P2P_PARAM_* variables of one job (Linux allows about 2 MiB for argv and environment). */
export const MAX_PARAMS_BYTES = 512 * 1024;

/** A job's program named so runs this very binary (the demo workload's stages, `demo ...`). */
export const SELF_PROGRAM = "p2p-orchestrator";

/** Argv that runs this same program again, whether compiled (the binary) or run from source (bun and main.ts). */
export function selfArgv(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.includes("~BUN") || Bun.main === process.execPath;
  return compiled ? [process.execPath] : [process.execPath, Bun.main];
}

/** The argv with a leading SELF_PROGRAM replaced by `selfArgv()`. */
export function withSelf(argv: readonly string[]): string[] {
  return argv[0] === SELF_PROGRAM ? [...selfArgv(), ...argv.slice(1)] : [...argv];
}

/** What the node tells every job about itself, beside its parameters. */
export interface JobContext {
  workId: string;
  type: string;
  attempt: number;
  outputDir: string;
}

/**
 * The job's argv: an entry that is exactly "{key}" becomes that value as one argument; nothing else is touched, and
 * no value is ever split or interpreted. Only strings, finite numbers and booleans may stand in argv.
 */
export function jobArgv(command: readonly string[], params: Record<string, unknown>, ctx: JobContext): string[] {
  const problem = templateProblems(command)[0];
  if (problem) throw new Error(`the job's command is unsafe: argument ${problem.index} should be ${problem.expected}`);
  return command.map((arg) => {
    const key = WHOLE_PLACEHOLDER.exec(arg)?.[1];
    if (key === undefined) return arg;
    if (isBuiltinPlaceholder(key)) return ctx.outputDir; // "{output_dir}", the one built-in so far
    if (!Object.hasOwn(params, key)) throw new Error(`the job's command needs "${key}", which the item's config lacks`);
    const value = params[key];
    const plain = typeof value === "string" || typeof value === "boolean" || Number.isFinite(value);
    if (!plain) {
      throw new Error(
        `config.${key} stands in the job's argv: expected a string, a finite number or a boolean, found ${kindOf(value)}`,
      );
    }
    return checkedText(key, String(value));
  });
}

/**
 * The job's environment: the node's own (less any P2P_PARAM_* of its own), the template's, then P2P_WORK_ID,
 * P2P_JOB_TYPE, P2P_ATTEMPT, P2P_OUTPUT_DIR and one P2P_PARAM_<KEY> per config key of [a-z0-9_] other than
 * "output_dir" (objects and arrays as JSON; other keys are not exported).
 */
export function jobEnv(
  params: Record<string, unknown>,
  ctx: JobContext,
  templateEnv: Readonly<Record<string, string>> = {},
  inherited: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) {
    if (value !== undefined && !name.startsWith("P2P_PARAM_")) env[name] = value;
  }
  Object.assign(env, templateEnv, {
    P2P_WORK_ID: ctx.workId,
    P2P_JOB_TYPE: ctx.type,
    P2P_ATTEMPT: String(ctx.attempt),
    P2P_OUTPUT_DIR: ctx.outputDir,
  });
  let total = 0;
  for (const [key, value] of Object.entries(params)) {
    if (!PARAM_KEY.test(key) || isBuiltinPlaceholder(key)) continue;
    const text = checkedText(key, typeof value === "string" ? value : String(JSON.stringify(value)));
    total += Buffer.byteLength(text);
    if (total > MAX_PARAMS_BYTES) throw new Error(`the item's config exceeds ${MAX_PARAMS_BYTES} bytes of parameters`);
    env[paramEnvName(key)] = text;
  }
  return env;
}

/** A value as it may reach a process: without NUL (which would cut it short), and bounded. */
function checkedText(key: string, text: string): string {
  if (text.includes("\0")) throw new Error(`config.${key}: expected no NUL character`);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_PARAM_BYTES)
    throw new Error(`config.${key}: expected at most ${MAX_PARAM_BYTES} bytes, found ${bytes}`);
  return text;
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  return value !== null && typeof value === "object" ? "an object" : String(value);
}
