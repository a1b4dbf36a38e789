import type { StatsFs } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { formatBytes } from "../shared/format.ts";

export interface DiskCheck {
  /** The disk's size as `df` counts it: what is used plus what this process may still use. */
  totalBytes: number;
  /** What this process may still use (blocks reserved for root excluded). */
  freeBytes: number;
  incomingBytes: number;
  /** The most the disk may be filled to, in percent. */
  maxPercent: number;
}

export type DiskVerdict = { ok: true } | { ok: false; reason: string };

export function checkDisk({ totalBytes, freeBytes, incomingBytes, maxPercent }: DiskCheck): DiskVerdict {
  const incoming = formatBytes(incomingBytes);
  if (totalBytes <= 0) return { ok: false, reason: `the disk reports no capacity, so ${incoming} cannot be received` };
  if (incomingBytes > freeBytes) {
    return { ok: false, reason: `${incoming} does not fit: only ${formatBytes(freeBytes)} is free` };
  }
  const usedPercent = ((totalBytes - freeBytes + incomingBytes) / totalBytes) * 100;
  if (usedPercent <= maxPercent) return { ok: true };
  return {
    ok: false,
    reason:
      `receiving ${incoming} would fill the disk to ${usedPercent.toFixed(1)}%, past the ${maxPercent}% limit ` +
      `(${formatBytes(freeBytes)} free of ${formatBytes(totalBytes)})`,
  };
}

/** Whether `incomingBytes` more may be written under `dir` (which need not exist yet). */
export async function diskGate(dir: string, incomingBytes: number, maxPercent: number): Promise<DiskVerdict> {
  const stats = await statfsNearest(dir);
  const verdict = checkDisk({
    totalBytes: (stats.blocks - stats.bfree + stats.bavail) * stats.bsize,
    freeBytes: stats.bavail * stats.bsize,
    incomingBytes,
    maxPercent,
  });
  return verdict.ok ? verdict : { ok: false, reason: `${dir}: ${verdict.reason}` };
}

async function statfsNearest(dir: string): Promise<StatsFs> {
  for (let at = dir; ; at = dirname(at)) {
    try {
      return await statfs(at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || dirname(at) === at) throw e;
    }
  }
}
