import { MAX_RETIRED_EXCEPT, MAX_RETIRED_RULES, type Retired } from "./model.ts";

export type { Retired };

/**
 * Files a category no longer keeps, as a rule every node applies alike: under folder `under`, the entries (files
 * or folders) whose name starts with a number below `below`, except files with the listed contents. The rule is
 * decided from the replicated state (a run's retention) by the nodes that hold it and travels with their
 * manifests; a node deletes what it holds under the rule and never fetches it again, so one peer's late copy is
 * not copied back to the rest.
 */

/** The number an entry's name starts with ("000012" in a folder of games, "0012-<sha>.model" for a model). */
function leadingNumber(name: string): number | null {
  const digits = /^\d{1,9}/.exec(name)?.[0];
  return digits === undefined ? null : Number(digits);
}

export function isRetired(path: string, sha256: string, rules: readonly Retired[]): boolean {
  const slash = path.indexOf("/");
  if (slash < 0) return false;
  const under = path.slice(0, slash);
  const number = leadingNumber(path.slice(slash + 1));
  if (number === null) return false;
  return rules.some((r) => r.under === under && number < r.below && !r.except.includes(sha256));
}

/**
 * One rule per folder from what several nodes said: the furthest `below` wins (a run only ever retires more);
 * where nodes agree on it, a file any of them still excepts stays (a voter that lags keeps more, never less).
 */
export function mergeRetired(lists: ReadonlyArray<readonly Retired[]>): Retired[] {
  const byFolder = new Map<string, Retired>();
  for (const rule of lists.flat()) {
    const current = byFolder.get(rule.under);
    if (!current || rule.below > current.below) byFolder.set(rule.under, { ...rule, except: [...rule.except] });
    else if (rule.below === current.below) current.except = [...new Set([...current.except, ...rule.except])];
  }
  // A rule whose exceptions outgrow the wire's bound is not applied at all: cutting the list would delete kept files.
  return [...byFolder.values()]
    .filter((r) => r.below > 0 && r.except.length <= MAX_RETIRED_EXCEPT)
    .sort((a, b) => (a.under < b.under ? -1 : 1))
    .slice(0, MAX_RETIRED_RULES);
}

/** A short fingerprint of the rules, folded into the category's gossiped digest so peers notice a new rule. */
export function retiredFingerprint(rules: readonly Retired[]): string {
  if (rules.length === 0) return "";
  const text = rules.map((r) => `${r.under}<${r.below}-${[...r.except].sort().join(",")}`).join(";");
  return new Bun.CryptoHasher("sha256").update(text).digest("hex").slice(0, 16);
}
