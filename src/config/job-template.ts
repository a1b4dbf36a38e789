/**
 * The rules of a job template's argv. A "{key}" placeholder may only be a whole argv entry: it becomes exactly one
 * argument, never split and never read as code. Every parameter also reaches the job as the environment variable
 * P2P_PARAM_<KEY>, which is how a shell script (or any text that is parsed again) must read it.
 */

/** A parameter name: lower-case, so that each maps to its own variable name. */
export const PARAM_KEY = /^[a-z0-9_]{1,64}$/;
/** A placeholder standing as a whole argv entry. */
export const WHOLE_PLACEHOLDER = /^\{([a-z0-9_]{1,64})\}$/;
/** Anything that looks like a placeholder, for refusing those that are not whole entries ("${x}" is shell syntax). */
const ANY_PLACEHOLDER = /(?<!\$)\{([A-Za-z0-9_]+)\}/g;

/** Placeholders the node fills itself, and the variable that carries the same value. */
const BUILTIN_PLACEHOLDERS: ReadonlyMap<string, string> = new Map([["output_dir", "P2P_OUTPUT_DIR"]]);

export function isBuiltinPlaceholder(key: string): boolean {
  return BUILTIN_PLACEHOLDERS.has(key);
}

/** The environment variable that carries the parameter `key` (keys outside [a-z0-9_] are not exported). */
export function paramEnvName(key: string): string {
  return BUILTIN_PLACEHOLDERS.get(key) ?? `P2P_PARAM_${key.toUpperCase()}`;
}

/** POSIX-style shells: with -c (alone or in a cluster such as -ec), their first operand is a script. */
const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"]);
/** Shells that parse everything after the program name as one command line. */
const LINE_SHELLS = new Set(["cmd", "powershell", "pwsh"]);
/** Interpreters whose flag takes the next argument as code. */
const CODE_FLAGS: Readonly<Record<string, readonly string[]>> = {
  python: ["-c"],
  node: ["-e", "--eval", "-p", "--print"],
  bun: ["-e", "--eval", "-p", "--print"],
  deno: ["eval"],
  perl: ["-e", "-E"],
  ruby: ["-e"],
  php: ["-r"],
  su: ["-c", "--command"],
};

/** "/usr/bin/python3.11" → "python", "C:\\Windows\\cmd.exe" → "cmd". */
function programName(arg: string): string {
  const base = arg.slice(Math.max(arg.lastIndexOf("/"), arg.lastIndexOf("\\")) + 1).toLowerCase();
  return base.replace(/\.exe$/, "").replace(/[0-9.]+$/, "");
}

/** Indexes of the argv entries that some program in the command runs as code, each with how it is named. */
export function codeArguments(command: readonly string[]): Map<number, string> {
  const code = new Map<number, string>();
  command.forEach((arg, i) => {
    const name = programName(arg);
    if (LINE_SHELLS.has(name)) {
      for (let j = i + 1; j < command.length; j++) code.set(j, `the command line of "${arg}"`);
    } else if (SHELLS.has(name)) {
      const script = shellScriptIndex(command, i);
      if (script !== null) code.set(script, `the script of "${arg} -c"`);
    } else {
      const flags = CODE_FLAGS[name] ?? [];
      for (let j = i + 1; j < command.length - 1; j++) {
        if (flags.includes(command[j] as string)) code.set(j + 1, `the code of "${arg} ${command[j]}"`);
      }
    }
  });
  return code;
}

/** The script operand of the shell at `at` when it is given -c anywhere after it (erring towards "it is"), or null. */
function shellScriptIndex(command: readonly string[], at: number): number | null {
  const dashC = command.findIndex((arg, j) => j > at && (/^-[A-Za-z]*c[A-Za-z]*$/.test(arg) || arg === "--command"));
  if (dashC < 0) return null;
  for (let j = dashC + 1; j < command.length; j++) {
    const arg = command[j] as string;
    if (arg === "--") return j + 1 < command.length ? j + 1 : null;
    if (/^[-+][oO]$/.test(arg))
      j++; // -o pipefail: the next word is the option's value
    else if (!/^[-+]-?[A-Za-z]/.test(arg)) return j;
  }
  return null;
}

export interface TemplateProblem {
  index: number;
  /** What was expected instead, in words. */
  expected: string;
}

/** What is wrong with a template's argv; empty when it is safe to fill. */
export function templateProblems(command: readonly string[]): TemplateProblem[] {
  const code = codeArguments(command);
  const problems: TemplateProblem[] = [];
  command.forEach((arg, index) => {
    for (const [text, key = ""] of arg.matchAll(ANY_PLACEHOLDER)) {
      const expected = placeholderProblem(text, key, index, text === arg, code.get(index));
      if (expected) problems.push({ index, expected });
    }
  });
  return problems;
}

/** Why the placeholder `text` cannot stand in argument `index`, or null when it may. */
function placeholderProblem(text: string, key: string, index: number, whole: boolean, codeOf: string | undefined) {
  const variable = paramEnvName(key);
  if (!PARAM_KEY.test(key)) return `a placeholder name of 1-64 lower-case letters, digits or "_" in ${text}`;
  if (index === 0) return "a program, not a placeholder: parameters cannot choose what runs";
  if (codeOf) return `no placeholder in ${codeOf}: it reads the variable ${variable}, not ${text}`;
  if (whole) return null;
  return `${text} only as a whole argv entry, where it is one argument (or the variable ${variable})`;
}
