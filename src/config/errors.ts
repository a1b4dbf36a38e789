import type * as v from "valibot";

/** What a failed check wanted, in words: custom messages are written as the expectation. */
export function expectation(issue: v.BaseIssue<unknown>): string {
  if (issue.type === "strict_object" && issue.expected === "never") return "no such key (unknown key)";
  if (issue.kind === "schema" && issue.received === "undefined" && issue.path?.length)
    return "this key (it is missing)";
  if (issue.kind === "schema" || issue.message.startsWith("Invalid")) return issue.expected ?? issue.message;
  return issue.message;
}

export function issuePath(issue: v.BaseIssue<unknown>): string {
  let out = "";
  for (const item of issue.path ?? []) {
    const key = (item as { key: unknown }).key;
    out += typeof key === "number" ? `[${key}]` : out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** One readable line per problem: `<where>: <key.path>: expected <x>, found <y>`. */
export function describeIssues(where: string, issues: readonly v.BaseIssue<unknown>[]): string[] {
  return issues.map(
    (issue) =>
      `${where}${issuePath(issue) ? `: ${issuePath(issue)}` : ""}: expected ${expectation(issue)}, found ${issue.received ?? JSON.stringify(issue.input)}`,
  );
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}
