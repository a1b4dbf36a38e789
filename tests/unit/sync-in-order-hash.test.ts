import { describe, expect, test } from "bun:test";
import { InOrderHash } from "../../src/sync/in-order-hash.ts";

const pieces = Array.from({ length: 6 }, (_, i) => new Uint8Array(1000).fill(i + 1));
const whole = new Bun.CryptoHasher("sha256");
for (const p of pieces) whole.update(p);
const expected = whole.digest("hex");

describe("the whole-file hash built as pieces land", () => {
  test("pieces in order give the file's SHA-256", () => {
    const h = new InOrderHash(pieces.length);
    pieces.forEach((p, i) => {
      h.add(i, p);
    });
    expect(h.digest()).toBe(expected);
  });

  test("pieces a little out of order wait in the buffer and still give it", () => {
    const h = new InOrderHash(pieces.length, 3);
    for (const i of [1, 2, 0, 4, 3, 5, 5]) h.add(i, pieces[i] as Uint8Array);
    expect(h.digest()).toBe(expected);
  });

  test("too far out of order, a missing piece, or a resume: no digest (hash the file from disk)", () => {
    const far = new InOrderHash(pieces.length, 2);
    for (const i of [5, 4, 3, 0, 1, 2]) far.add(i, pieces[i] as Uint8Array);
    expect(far.digest()).toBeNull();
    const short = new InOrderHash(pieces.length);
    pieces.slice(0, 5).forEach((p, i) => {
      short.add(i, p);
    });
    expect(short.digest()).toBeNull();
    const resumed = new InOrderHash(pieces.length);
    resumed.giveUp();
    pieces.forEach((p, i) => {
      resumed.add(i, p);
    });
    expect(resumed.digest()).toBeNull();
  });
});
