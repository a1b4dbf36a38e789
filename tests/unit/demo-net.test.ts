import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { INPUT_SIZE, Position } from "../../src/demo/game.ts";
import { decodeModel, encodeModel, generationZero, readModel, sha256, writeModel } from "../../src/demo/model-file.ts";
import { Adam, type Architecture, Network } from "../../src/demo/net.ts";
import { Rng } from "../../src/demo/random.ts";

const SMALL: Architecture = { type: "mlp", input: INPUT_SIZE, hidden: [12, 10], policy: 7 };

function sample(notation: string): Float32Array {
  const input = new Float32Array(INPUT_SIZE);
  Position.fromNotation(notation).encode(input);
  return input;
}

function loss(net: Network, input: Float32Array, target: Float32Array, value: number): number {
  const scratch = new Float32Array(net.params.length);
  const l = net.accumulateGradient(input, 0, target, 0, value, scratch);
  return l.policy + l.value;
}

describe("policy/value network", () => {
  test("backward matches finite differences of the loss", () => {
    const net = Network.create(7, SMALL);
    const input = sample("4453");
    const target = new Float32Array([0.1, 0, 0.2, 0.5, 0.1, 0.1, 0]);
    const grads = new Float32Array(net.params.length);
    net.accumulateGradient(input, 0, target, 0, -0.6, grads);
    const rng = new Rng(3);
    let checked = 0;
    for (let t = 0; t < 400 && checked < 60; t++) {
      const i = rng.int(net.params.length);
      const analytic = grads[i] as number;
      if (Math.abs(analytic) < 1e-3) continue;
      const original = net.params[i] as number;
      const h = 1e-2;
      net.params[i] = original + h;
      const up = loss(net, input, target, -0.6);
      net.params[i] = original - h;
      const down = loss(net, input, target, -0.6);
      net.params[i] = original;
      const numeric = (up - down) / (2 * h);
      expect(Math.abs(numeric - analytic)).toBeLessThan(0.02 * Math.max(1, Math.abs(analytic)) + 2e-3);
      checked++;
    }
    expect(checked).toBeGreaterThan(30);
  });

  test("Adam fits a few positions, and the same seed gives the same weights", () => {
    const train = (): Network => {
      const net = Network.create(11, SMALL);
      const adam = new Adam(net.params.length, 3e-3);
      const inputs = ["", "4", "44", "445"].map(sample);
      const targets = [0, 3, 2, 6].map((best) => Float32Array.from({ length: 7 }, (_, k) => (k === best ? 1 : 0)));
      for (let step = 0; step < 300; step++) {
        const grads = new Float32Array(net.params.length);
        inputs.forEach((input, i) => {
          net.accumulateGradient(input, 0, targets[i] as Float32Array, 0, i % 2 ? 0.5 : -0.5, grads);
        });
        adam.apply(net.params, grads, 1 / inputs.length);
      }
      const evaluation = net.evaluate(inputs[1] as Float32Array);
      expect(evaluation.policy[3]).toBeGreaterThan(0.9);
      expect(evaluation.value).toBeGreaterThan(0.3);
      return net;
    };
    expect(Array.from(train().params)).toEqual(Array.from(train().params));
    expect(Array.from(Network.create(1, SMALL).params)).not.toEqual(Array.from(Network.create(2, SMALL).params));
  });
});

describe("model file", () => {
  test("round trips header and weights, and is identified by the SHA-256 of its bytes", () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-model-"));
    try {
      const { header, net } = generationZero(42);
      const path = join(dir, "gen0.model");
      const id = writeModel(path, { ...header, metrics: { policy: 1.5 } }, net);
      const bytes = new Uint8Array(readFileSync(path));
      expect(id).toBe(sha256(bytes));
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      const model = readModel(path);
      expect(model.sha256).toBe(id);
      expect(model.header).toMatchObject({ format: "p2p-az-model", version: 1, generation: 0, parent: null, seed: 42 });
      expect(model.header.metrics).toEqual({ policy: 1.5 });
      expect(Array.from(model.net.params)).toEqual(Array.from(net.params));
      // The same seed gives the same bytes, hence the same id; another seed another id.
      expect(sha256(encodeModel(generationZero(42).header, generationZero(42).net))).toBe(
        sha256(encodeModel(header, net)),
      );
      expect(sha256(encodeModel(generationZero(43).header, generationZero(43).net))).not.toBe(
        sha256(encodeModel(header, net)),
      );
      const corrupt = bytes.slice(0, bytes.length - 4);
      expect(() => decodeModel(corrupt)).toThrow("expected");
      expect(() => decodeModel(new TextEncoder().encode("hello world"))).toThrow("wrong magic");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
