import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A folder on its own small tmpfs, so a test can fill and free a real disk under a real SQLite. Mounting
 * needs root (or CAP_SYS_ADMIN); where it is not permitted, `mountSmallDisk` returns null and the test is
 * skipped with SMALL_DISK_SKIP's reason.
 */
export interface SmallDisk {
  readonly dir: string;
  /** Writes a filler file until the disk refuses more (ENOSPC). */
  fill(): void;
  /** Removes the filler: the space is back at once. */
  free(): void;
  unmount(): void;
}

export const SMALL_DISK_SKIP =
  "skipped: mounting a tmpfs is not permitted here (needs root); the disk-full tests need it";

export function mountSmallDisk(sizeMb: number, opts: { readOnly?: boolean } = {}): SmallDisk | null {
  const dir = mkdtempSync(join(tmpdir(), "p2p-disk-"));
  const options = `${opts.readOnly ? "ro," : ""}size=${sizeMb}M`;
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", options, "tmpfs", dir], { stderr: "pipe" });
  if (mounted.exitCode !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  const filler = join(dir, "filler");
  return {
    dir,
    fill() {
      const fd = openSync(filler, "a");
      const chunk = new Uint8Array(64 * 1024);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if ((e as { code?: string }).code !== "ENOSPC") throw e;
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      Bun.spawnSync(["umount", "-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether this process may mount a tmpfs (tried once). */
export const canMountSmallDisk = (() => {
  const probe = mountSmallDisk(1);
  probe?.unmount();
  return probe !== null;
})();
