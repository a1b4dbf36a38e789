// A policy/value MLP on Float32Arrays: input -> hidden layers (ReLU) -> 7 policy logits and a tanh value.
// Forward, backward and Adam are written out by hand: the network has ~30k parameters, so plain loops beat any
// framework and keep the compiled binary free of native code.

import { COLUMNS, INPUT_SIZE } from "./game.ts";
import { Rng } from "./random.ts";

export interface Architecture {
  type: "mlp";
  input: number;
  hidden: number[];
  policy: number;
}

export const DEFAULT_ARCHITECTURE: Architecture = {
  type: "mlp",
  input: INPUT_SIZE,
  hidden: [128, 128],
  policy: COLUMNS,
};

interface Layer {
  inputs: number;
  outputs: number;
  /** Offsets into params: weights (outputs x inputs, row-major) then biases. */
  weights: number;
  biases: number;
}

export function parameterCount(arch: Architecture): number {
  return layout(arch).total;
}

function layout(arch: Architecture): { layers: Layer[]; total: number } {
  const sizes = [arch.input, ...arch.hidden];
  const layers: Layer[] = [];
  let offset = 0;
  const add = (inputs: number, outputs: number): void => {
    layers.push({ inputs, outputs, weights: offset, biases: offset + inputs * outputs });
    offset += inputs * outputs + outputs;
  };
  for (let i = 1; i < sizes.length; i++) add(sizes[i - 1] ?? 0, sizes[i] ?? 0);
  const last = sizes[sizes.length - 1] ?? 0;
  add(last, arch.policy); // policy head
  add(last, 1); // value head
  return { layers, total: offset };
}

export interface Evaluation {
  /** Softmax over all columns (callers mask illegal ones). */
  policy: Float32Array;
  /** Expected result for the side to move, in [-1, 1]. */
  value: number;
}

export interface Losses {
  policy: number;
  value: number;
}

export class Network {
  readonly arch: Architecture;
  readonly params: Float32Array;
  private readonly layers: Layer[];
  private readonly hiddenLayers: Layer[];
  private readonly policyHead: Layer;
  private readonly valueHead: Layer;
  /** Activations per hidden layer (after ReLU), reused across calls. */
  private readonly activations: Float32Array[];
  private readonly logits: Float32Array;
  // Scratch buffers, reused by every call: a forward or backward pass allocates nothing.
  private readonly valueOut = new Float32Array(1);
  private readonly probs: Float32Array;
  private readonly dLogits: Float32Array;
  private readonly dValue = new Float32Array(1);
  /** Gradient w.r.t. each hidden layer's output. */
  private readonly dActivations: Float32Array[];

  constructor(arch: Architecture, params?: Float32Array) {
    this.arch = arch;
    const { layers, total } = layout(arch);
    if (params && params.length !== total) throw new Error(`expected ${total} parameters, got ${params.length}`);
    this.params = params ?? new Float32Array(total);
    this.layers = layers;
    this.hiddenLayers = layers.slice(0, arch.hidden.length);
    this.policyHead = layers[arch.hidden.length] as Layer;
    this.valueHead = layers[arch.hidden.length + 1] as Layer;
    this.activations = arch.hidden.map((n) => new Float32Array(n));
    this.logits = new Float32Array(arch.policy);
    this.probs = new Float32Array(arch.policy);
    this.dLogits = new Float32Array(arch.policy);
    this.dActivations = arch.hidden.map((n) => new Float32Array(n));
  }

  /** He-initialised weights and zero biases, reproducible from the seed. */
  static create(seed: number, arch: Architecture = DEFAULT_ARCHITECTURE): Network {
    const net = new Network(arch);
    const rng = new Rng(seed);
    for (const layer of net.layers) {
      const scale = Math.sqrt(2 / layer.inputs);
      for (let i = 0; i < layer.inputs * layer.outputs; i++) net.params[layer.weights + i] = rng.normal() * scale;
    }
    return net;
  }

  evaluate(input: Float32Array, offset = 0): Evaluation {
    this.forward(input, offset);
    const policy = new Float32Array(this.arch.policy);
    softmax(this.logits, policy);
    return { policy, value: Math.tanh(this.valueLogit) };
  }

  private valueLogit = 0;

  private forward(input: Float32Array, offset: number): void {
    const p = this.params;
    let source = input;
    let sourceOffset = offset;
    for (let l = 0; l < this.hiddenLayers.length; l++) {
      const layer = this.hiddenLayers[l] as Layer;
      const out = this.activations[l] as Float32Array;
      dense(p, layer, source, sourceOffset, out);
      for (let j = 0; j < out.length; j++) if ((out[j] as number) < 0) out[j] = 0;
      source = out;
      sourceOffset = 0;
    }
    dense(p, this.policyHead, source, 0, this.logits);
    dense(p, this.valueHead, source, 0, this.valueOut);
    this.valueLogit = this.valueOut[0] as number;
  }

  /**
   * Adds to `grads` the gradient of one sample's loss (cross-entropy against the target policy, plus the squared
   * error of the value) and returns the two losses.
   */
  accumulateGradient(
    input: Float32Array,
    offset: number,
    targetPolicy: Float32Array,
    policyOffset: number,
    targetValue: number,
    grads: Float32Array,
  ): Losses {
    this.forward(input, offset);
    const p = this.params;
    const probs = this.probs;
    softmax(this.logits, probs);
    let policyLoss = 0;
    const dLogits = this.dLogits;
    for (let k = 0; k < probs.length; k++) {
      const target = targetPolicy[policyOffset + k] as number;
      if (target > 0) policyLoss -= target * Math.log(Math.max(probs[k] as number, 1e-12));
      dLogits[k] = (probs[k] as number) - target;
    }
    const value = Math.tanh(this.valueLogit);
    const valueLoss = (value - targetValue) ** 2;
    const dValue = this.dValue;
    dValue[0] = 2 * (value - targetValue) * (1 - value * value);

    const lastIndex = this.hiddenLayers.length - 1;
    const last = this.activations[lastIndex] as Float32Array;
    for (const d of this.dActivations) d.fill(0);
    const dLast = this.dActivations[lastIndex] as Float32Array;
    backDense(p, this.policyHead, last, 0, dLogits, grads, dLast);
    backDense(p, this.valueHead, last, 0, dValue, grads, dLast);
    for (let l = lastIndex; l >= 0; l--) {
      const out = this.activations[l] as Float32Array;
      const dHidden = this.dActivations[l] as Float32Array;
      for (let j = 0; j < out.length; j++) if ((out[j] as number) <= 0) dHidden[j] = 0;
      const layer = this.hiddenLayers[l] as Layer;
      const below = l === 0 ? input : (this.activations[l - 1] as Float32Array);
      const belowOffset = l === 0 ? offset : 0;
      backDense(p, layer, below, belowOffset, dHidden, grads, this.dActivations[l - 1]);
    }
    return { policy: policyLoss, value: valueLoss };
  }
}

function dense(p: Float32Array, layer: Layer, input: Float32Array, offset: number, out: Float32Array): void {
  const n = layer.inputs;
  for (let j = 0; j < layer.outputs; j++) {
    let sum = p[layer.biases + j] as number;
    const row = layer.weights + j * n;
    for (let i = 0; i < n; i++) sum += (p[row + i] as number) * (input[offset + i] as number);
    out[j] = sum;
  }
}

/** Gradient of a dense layer: adds dW and db into grads, and (if asked) the gradient w.r.t. its input into dInput. */
function backDense(
  p: Float32Array,
  layer: Layer,
  input: Float32Array,
  offset: number,
  dOut: Float32Array,
  grads: Float32Array,
  dInput: Float32Array | undefined,
): void {
  const n = layer.inputs;
  for (let j = 0; j < layer.outputs; j++) {
    const g = dOut[j] as number;
    if (g === 0) continue;
    grads[layer.biases + j] = (grads[layer.biases + j] as number) + g;
    const row = layer.weights + j * n;
    for (let i = 0; i < n; i++) {
      grads[row + i] = (grads[row + i] as number) + g * (input[offset + i] as number);
      if (dInput) dInput[i] = (dInput[i] as number) + g * (p[row + i] as number);
    }
  }
}

function softmax(logits: Float32Array, out: Float32Array): void {
  let max = Number.NEGATIVE_INFINITY;
  for (const x of logits) if (x > max) max = x;
  let sum = 0;
  for (let k = 0; k < logits.length; k++) {
    const e = Math.exp((logits[k] as number) - max);
    out[k] = e;
    sum += e;
  }
  for (let k = 0; k < out.length; k++) out[k] = (out[k] as number) / sum;
}

/** Adam with decoupled weight decay (AdamW). */
export class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private step = 0;

  constructor(
    size: number,
    private readonly learningRate = 1e-3,
    private readonly weightDecay = 1e-4,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
  ) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  apply(params: Float32Array, grads: Float32Array, scale: number): void {
    this.step++;
    const c1 = 1 - this.beta1 ** this.step;
    const c2 = 1 - this.beta2 ** this.step;
    for (let i = 0; i < params.length; i++) {
      const g = (grads[i] as number) * scale;
      const m = this.beta1 * (this.m[i] as number) + (1 - this.beta1) * g;
      const v = this.beta2 * (this.v[i] as number) + (1 - this.beta2) * g * g;
      this.m[i] = m;
      this.v[i] = v;
      const w = params[i] as number;
      params[i] = w - this.learningRate * (m / c1 / (Math.sqrt(v / c2) + 1e-8) + this.weightDecay * w);
    }
  }
}
