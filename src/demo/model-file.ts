// The model file: "P2PAZ\n" magic, a little-endian uint32 header length, a JSON header, then the weights as
// little-endian float32. A model is identified by the SHA-256 of the whole file.
//
// Header (format version 1): { format, version, game, architecture, parameters, generation, parent, seed, metrics }.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "./files.ts";
import { type Architecture, DEFAULT_ARCHITECTURE, Network, parameterCount } from "./net.ts";

const MAGIC = new TextEncoder().encode("P2PAZ\n");
export const MODEL_FORMAT = "p2p-az-model";
export const MODEL_VERSION = 1;

export interface ModelHeader {
  format: typeof MODEL_FORMAT;
  version: number;
  game: "connect4";
  architecture: Architecture;
  parameters: number;
  generation: number;
  /** The SHA-256 of the model this one was trained from; null for generation 0. */
  parent: string | null;
  seed: number;
  metrics: Record<string, number>;
}

export interface Model {
  header: ModelHeader;
  net: Network;
  sha256: string;
}

export function encodeModel(header: ModelHeader, net: Network): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  // The weights start on a 4-byte boundary so they can be read in place.
  const headerEnd = MAGIC.length + 4 + json.length;
  const weightsAt = Math.ceil(headerEnd / 4) * 4;
  const bytes = new Uint8Array(weightsAt + net.params.length * 4);
  bytes.set(MAGIC, 0);
  new DataView(bytes.buffer).setUint32(MAGIC.length, weightsAt - MAGIC.length - 4, true);
  bytes.set(json, MAGIC.length + 4);
  bytes.fill(0x20, headerEnd, weightsAt); // spaces: still valid JSON when the header is read back
  const view = new DataView(bytes.buffer, weightsAt);
  for (let i = 0; i < net.params.length; i++) view.setFloat32(i * 4, net.params[i] as number, true);
  return bytes;
}

export function decodeModel(bytes: Uint8Array, name = "model"): Model {
  const bad = (why: string): Error => new Error(`${name} is not a model file: ${why}`);
  if (bytes.length < MAGIC.length + 4 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad("wrong magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  const weightsAt = MAGIC.length + 4 + headerLength;
  if (weightsAt > bytes.length) throw bad("header runs past the end");
  let header: ModelHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, weightsAt))) as ModelHeader;
  } catch {
    throw bad("header is not JSON");
  }
  if (header.format !== MODEL_FORMAT) throw bad(`format is ${JSON.stringify(header.format)}`);
  if (header.version !== MODEL_VERSION) throw bad(`version ${header.version} (this build reads ${MODEL_VERSION})`);
  if (header.architecture?.type !== "mlp") throw bad("unknown architecture");
  const count = parameterCount(header.architecture);
  if (bytes.length - weightsAt !== count * 4) throw bad(`expected ${count} weights`);
  const params = new Float32Array(count);
  for (let i = 0; i < count; i++) params[i] = view.getFloat32(weightsAt + i * 4, true);
  return { header, net: new Network(header.architecture, params), sha256: sha256(bytes) };
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function readModel(path: string): Model {
  return decodeModel(new Uint8Array(readFileSync(path)), path);
}

/** Writes the model atomically and returns its SHA-256. */
export function writeModel(path: string, header: ModelHeader, net: Network): string {
  const bytes = encodeModel({ ...header, parameters: net.params.length }, net);
  writeFileAtomic(path, bytes);
  return sha256(bytes);
}

export function generationZero(
  seed: number,
  hidden = DEFAULT_ARCHITECTURE.hidden,
): { header: ModelHeader; net: Network } {
  const net = Network.create(seed, { ...DEFAULT_ARCHITECTURE, hidden });
  return {
    net,
    header: {
      format: MODEL_FORMAT,
      version: MODEL_VERSION,
      game: "connect4",
      architecture: net.arch,
      parameters: net.params.length,
      generation: 0,
      parent: null,
      seed,
      metrics: {},
    },
  };
}
