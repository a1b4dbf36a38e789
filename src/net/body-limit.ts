import { errorResponse } from "./errors.ts";
import type { Handler } from "./gate.ts";

/** A chunked body ran past the node's limit while being read. */
export class BodyTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`body over the ${maxBytes}-byte limit`);
    this.name = "BodyTooLargeError";
  }
}

export function bodyTooLargeResponse(maxBytes: number): Response {
  return errorResponse(413, "payload_too_large", `body over the ${maxBytes}-byte limit`, {
    field: "body",
    expected: `at most ${maxBytes} bytes`,
  });
}

/**
 * The node's body limit, in front of everything, so the answer is always our JSON 413 and never Bun's
 * empty one: a declared length over it is refused unread, and a chunked body is cut off (the reader
 * gets BodyTooLargeError) as soon as it passes it.
 */
export function limitBodies(maxBytes: number, next: Handler): Handler {
  return async (request: Request, remote?: string): Promise<Response> => {
    const declared = request.headers.get("content-length");
    if (declared !== null && !(Number(declared) <= maxBytes)) return bodyTooLargeResponse(maxBytes);
    try {
      return await next(declared === null && request.body ? bounded(request, request.body, maxBytes) : request, remote);
    } catch (e) {
      if (e instanceof BodyTooLargeError) return bodyTooLargeResponse(maxBytes);
      throw e;
    }
  };
}

function bounded(request: Request, body: ReadableStream<Uint8Array>, maxBytes: number): Request {
  let seen = 0;
  const counted = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) controller.error(new BodyTooLargeError(maxBytes));
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Request(request.url, { method: request.method, headers: request.headers, body: counted });
}
