import type { DataCategory } from "../config/load.ts";
import type { FileEntry, Manifest, Retired } from "./model.ts";
import { holdsCategory, staggerDelayMs } from "./policy.ts";
import { isRetired } from "./retired.ts";

/** A file this node lacks, and the holders when it first saw it (in a swarm, the copies it should spare). */
export interface Want {
  category: DataCategory;
  entry: FileEntry;
  origins: ReadonlySet<string>;
}

/** When this node first saw a wanted file (by category, path and content), and who held it then. */
export type FirstSeen = ReadonlyMap<string, { at: number; origins: ReadonlySet<string> }>;

export interface WantsInput {
  categories: readonly DataCategory[];
  capabilities: readonly string[];
  /** This node's files in a category. */
  local: (category: string) => readonly FileEntry[];
  /** Peers' manifests by `<node>/<category>`. */
  remote: ReadonlyMap<string, Manifest>;
  /** The peers alive now: only their manifests count. */
  alive: ReadonlySet<string>;
  /** The retention rules in force for a category: what they retire is never fetched. */
  rules: (category: string) => readonly Retired[];
}

/** What this node lacks of the categories it holds, with who holds it; a path held differently goes to the newest. */
export function wantedFiles(i: WantsInput): Want[] {
  const wants = new Map<string, Want>();
  for (const category of i.categories) {
    if (!holdsCategory(category, i.capabilities)) continue;
    const local = i.local(category.name);
    const rules = i.rules(category.name);
    for (const [key, manifest] of i.remote) {
      if (!i.alive.has(manifest.node) || !key.endsWith(`/${category.name}`)) continue;
      for (const entry of wantedFrom(local, manifest.files)) {
        if (isRetired(entry.path, entry.sha256, rules)) continue;
        const id = `${category.name}/${entry.path}`;
        const current = wants.get(id);
        if (!current || entry.mtimeMs > current.entry.mtimeMs) {
          wants.set(id, { category, entry, origins: new Set([manifest.node]) });
        } else if (current.entry.sha256 === entry.sha256) {
          (current.origins as Set<string>).add(manifest.node);
        }
      }
    }
  }
  return [...wants.values()];
}

export interface PlanInput {
  now: number;
  nodeId: string;
  wants: readonly Want[];
  maxTransfers: number;
  /** Transfers running or starting, by `<category>/<path>`, with the content each fetches. */
  busy: ReadonlyMap<string, string>;
  /** Transfers refused or given up, planned again only after `until`. */
  heldOff: ReadonlyMap<string, { until: number }>;
  firstSeen: FirstSeen;
  /** The nodes a category's files go to (this one included): the stagger's order among them. */
  receivers: (category: DataCategory) => readonly string[];
}

/**
 * Which transfers to start now: within the transfer limit, none already running (by path or content), none
 * held off, each after its stagger delay from when this node first saw it (its origins are the holders
 * then). Returns them with the first-seen times to keep (those of files still wanted).
 */
export function planTransfers(i: PlanInput): { start: Array<{ key: string; want: Want }>; firstSeen: FirstSeen } {
  const wanted = new Set(i.wants.map((w) => `${w.category.name}/${w.entry.path}/${w.entry.sha256}`));
  const firstSeen = new Map([...i.firstSeen].filter(([key]) => wanted.has(key)));
  const start: Array<{ key: string; want: Want }> = [];
  const fetching = new Set(i.busy.values());
  for (const want of i.wants) {
    if (i.busy.size + start.length >= i.maxTransfers) break;
    const key = `${want.category.name}/${want.entry.path}`;
    if (i.busy.has(key) || fetching.has(want.entry.sha256)) continue;
    if ((i.heldOff.get(key)?.until ?? 0) > i.now) continue;
    const seenKey = `${key}/${want.entry.sha256}`;
    const seen = firstSeen.get(seenKey) ?? { at: i.now, origins: want.origins };
    firstSeen.set(seenKey, seen);
    const delay = staggerDelayMs(want.entry.sha256, i.nodeId, i.receivers(want.category), want.category.staggerMs);
    if (i.now < seen.at + delay) continue;
    fetching.add(want.entry.sha256);
    start.push({ key, want: { ...want, origins: seen.origins } });
  }
  return { start, firstSeen };
}

/**
 * The entries of `remote` this node should fetch: paths it lacks, and paths it holds with other content when the
 * remote copy was written later (last writer wins). Never a path that already has the remote's content.
 */
export function wantedFrom(local: readonly FileEntry[], remote: readonly FileEntry[]): FileEntry[] {
  const held = new Map(local.map((e) => [e.path, e]));
  return remote.filter((r) => {
    const mine = held.get(r.path);
    if (!mine) return true;
    return mine.sha256 !== r.sha256 && r.mtimeMs > mine.mtimeMs;
  });
}
