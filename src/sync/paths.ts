import { lstat, realpath } from "node:fs/promises";
import { join, sep } from "node:path";

export type RootedPath = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Resolves `relative` (a manifest path: "/"-separated, relative to `root`) to a location that is really inside
 * `root`, following symlinks. The file need not exist yet: then its nearest existing ancestor is what is checked.
 * The returned path is the real one, so a caller opens what was checked rather than a path through links.
 */
export async function resolveInRoot(root: string, relative: string): Promise<RootedPath> {
  const named = JSON.stringify(relative);
  const lexical = lexicalRefusal(relative, named);
  if (lexical) return { ok: false, reason: lexical };

  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch (e) {
    return { ok: false, reason: `the data root ${root} cannot be resolved (${errorCode(e)})` };
  }
  const segments = relative.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.length === 0) return { ok: false, reason: `${named} names the data root itself, not a file in it` };

  // The root resolved a moment ago, so depth 0 ends the walk unless the disk changes under it.
  for (let depth = segments.length; depth >= 0; depth--) {
    const candidate = join(realRoot, ...segments.slice(0, depth));
    let real: string;
    try {
      real = await realpath(candidate);
    } catch (e) {
      const code = errorCode(e);
      if (code !== "ENOENT") return { ok: false, reason: `${named} cannot be resolved in ${realRoot} (${code})` };
      // A dangling symlink would be followed by whoever writes the file, wherever it points.
      if (await isSymlink(candidate)) {
        return { ok: false, reason: `${named} goes through a symlink at ${candidate} whose target does not exist` };
      }
      continue;
    }
    if (!isInside(realRoot, real)) {
      return { ok: false, reason: `${named} resolves to ${real}, outside the data root ${realRoot}` };
    }
    if (real === realRoot && depth === segments.length) {
      return { ok: false, reason: `${named} names the data root itself, not a file in it` };
    }
    return { ok: true, path: join(real, ...segments.slice(depth)) };
  }
  return { ok: false, reason: `the data root ${realRoot} disappeared while resolving ${named}` };
}

function lexicalRefusal(relative: string, named: string): string | null {
  if (relative === "") return "an empty path names no file";
  if (relative.includes("\0")) return `${named} contains a NUL byte`;
  if (relative.startsWith("/")) return `${named} is absolute; only paths relative to a data root are allowed`;
  if (/^[A-Za-z]:/.test(relative))
    return `${named} is a Windows drive path; only paths relative to a data root are allowed`;
  if (relative.startsWith("\\\\")) return `${named} is a Windows network (UNC) path; only relative paths are allowed`;
  if (relative.includes("\\")) return `${named} contains a backslash; paths separate folders with "/"`;
  if (relative.split("/").includes("..")) return `${named} contains a ".." segment, which could leave the data root`;
  return null;
}

function isInside(realRoot: string, real: string): boolean {
  const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
  return real === realRoot || real.startsWith(prefix);
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch {
    return false;
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}
