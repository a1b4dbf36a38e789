/** The anchor: an rsync daemon serving the source folder read-only, and `rsync -a` pulls from it. */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Child, makeTempDir, removeTempDir, waitFor } from "../lib.ts";

export const RSYNC = "/usr/bin/rsync";
const MODULE = "src";

export function rsyncMissing(): string | null {
  return existsSync(RSYNC) ? null : `${RSYNC} not found (apt-get install -y rsync)`;
}

export interface RsyncDaemon {
  readonly url: string;
  /**
   * `count` sequential pulls of `name`, each into its own fresh folder: the whole sequence's wall time
   * and each pull's, from spawning rsync to its exit, in ms.
   */
  pulls(name: string, size: number, bwlimitKiB: number, count: number): Promise<{ totalMs: number; each: number[] }>;
  stop(): Promise<void>;
}

/** Starts `rsync --daemon --no-detach` on host:port with one read-only module over `folder`. */
export async function startRsyncDaemon(folder: string, host: string, port: number): Promise<RsyncDaemon> {
  const dir = makeTempDir("bench-sync-rsyncd-");
  const conf = join(dir, "rsyncd.conf");
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  await Bun.write(
    conf,
    [
      `pid file = ${join(dir, "rsyncd.pid")}`,
      `log file = ${join(dir, "rsyncd.log")}`,
      "use chroot = no",
      `uid = ${uid}`,
      `gid = ${gid}`,
      "max connections = 16",
      "",
      `[${MODULE}]`,
      `path = ${folder}`,
      "read only = yes",
      "use chroot = no",
      "",
    ].join("\n"),
  );
  const daemon = new Child("rsyncd", [
    RSYNC,
    "--daemon",
    "--no-detach",
    `--config=${conf}`,
    `--address=${host}`,
    `--port=${port}`,
  ]);
  const url = `rsync://${host}:${port}/${MODULE}`;
  const stop = async () => {
    await daemon.stop();
    removeTempDir(dir);
  };
  try {
    await waitFor(
      async () => {
        if (daemon.exited) throw new Error(await daemon.describeExit());
        const probe = Bun.spawn([RSYNC, `${url}/`], { stdout: "ignore", stderr: "ignore" });
        return (await probe.exited) === 0;
      },
      10_000,
      `rsync daemon at ${url}`,
      100,
    );
  } catch (e) {
    await stop();
    throw e;
  }

  /** One pull of `name` into `dest` (which must not hold it yet); ms from spawn to exit. */
  const pullInto = async (name: string, size: number, bwlimitKiB: number, dest: string): Promise<number> => {
    const limit = bwlimitKiB > 0 ? [`--bwlimit=${bwlimitKiB}`] : [];
    const t0 = performance.now();
    const child = new Child(`rsync pull of ${name}`, [RSYNC, "-a", ...limit, `${url}/${name}`, `${dest}/`]);
    const code = await child.proc.exited;
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(await child.describeExit());
    await child.stop();
    const got = join(dest, name);
    if (!existsSync(got) || statSync(got).size !== size) throw new Error(`rsync left no ${size}-byte ${got}`);
    return ms;
  };

  return {
    url,
    async pulls(name, size, bwlimitKiB, count) {
      const dests = Array.from({ length: count }, () => makeTempDir("bench-sync-rsync-dest-"));
      try {
        const each: number[] = [];
        const t0 = performance.now();
        for (const dest of dests) each.push(await pullInto(name, size, bwlimitKiB, dest));
        return { totalMs: performance.now() - t0, each };
      } finally {
        for (const dest of dests) removeTempDir(dest);
      }
    },
    stop,
  };
}
