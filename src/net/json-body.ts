import { BodyTooLargeError, bodyTooLargeResponse } from "./body-limit.ts";
import { errorResponse } from "./errors.ts";

/**
 * Defence in depth: no legitimate body nests this deep (free-form fields have their own, lower caps),
 * and refusing before `JSON.parse` means neither the parser nor any later walk can overflow the stack.
 */
export const MAX_BODY_DEPTH = 64;

export type JsonBody = { ok: true; value: Record<string, unknown> } | { ok: false; response: Response };

/**
 * The one place a request body becomes a value: it must be declared JSON, be present, parse, nest at
 * most MAX_BODY_DEPTH deep, be an object, and hold only finite numbers (`1e309` parses as Infinity,
 * which storage would turn into null). Each refusal is a JSON error naming `body` or the field.
 */
export async function readJsonObject(request: Request): Promise<JsonBody> {
  const contentType = request.headers.get("content-type");
  if (contentType?.split(";")[0]?.trim().toLowerCase() !== "application/json") {
    const found =
      contentType === null ? "no content-type" : `content-type ${JSON.stringify(contentType.slice(0, 100))}`;
    return refuse(415, "unsupported_media_type", "body", "a JSON object sent as content-type application/json", found);
  }
  let text: string;
  try {
    text = await request.text();
  } catch (e) {
    if (e instanceof BodyTooLargeError) return { ok: false, response: bodyTooLargeResponse(e.maxBytes) };
    throw e;
  }
  return parseJsonObject(text);
}

export function parseJsonObject(text: string): JsonBody {
  if (text.trim() === "") return refuse(400, "bad_request", "body", "a JSON object", "an empty body");
  if (nestsDeeperThan(text, MAX_BODY_DEPTH)) {
    return refuse(422, "validation", "body", `at most ${MAX_BODY_DEPTH} levels of nesting`, "deeper nesting");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return refuse(400, "bad_request", "body", "valid JSON", (e as Error).message);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return refuse(422, "validation", "body", "a JSON object", describe(value));
  }
  const infinite = MAY_OVERFLOW.test(text) ? nonFinitePath(value) : null;
  if (infinite) {
    return refuse(422, "validation", `body.${infinite.path}`, "a finite number", String(infinite.value));
  }
  return { ok: true, value: value as Record<string, unknown> };
}

function refuse(status: number, error: string, field: string, expected: string, found: string): JsonBody {
  return {
    ok: false,
    response: errorResponse(status, error, `${field}: expected ${expected}, found ${found}`, {
      field,
      expected,
      found,
    }),
  };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** Counts brackets outside strings, without recursion and without parsing. */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = closingQuote(text, i);
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Where the string opened at `open` ends (a quote after an even run of backslashes); strings are skipped whole. */
function closingQuote(text: string, open: number): number {
  for (let at = text.indexOf('"', open + 1); at > 0; at = text.indexOf('"', at + 1)) {
    let slashes = 0;
    while (text.charCodeAt(at - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) return at;
  }
  return text.length;
}

/** Only a literal with a three-digit exponent or 309 digits can parse as ±Infinity: skip the walk otherwise. */
const MAY_OVERFLOW = /[eE]\+?\d{3}|\d{309}/;

/** The first non-finite number's path (`a.b[2]`), walking with an explicit stack. */
function nonFinitePath(root: object): { path: string; value: number } | null {
  const stack: Array<{ value: unknown; path: string }> = [{ value: root, path: "" }];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { value, path } = next;
    if (typeof value === "number" && !Number.isFinite(value)) return { path, value };
    if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) stack.push({ value: item, path: `${path}[${i}]` });
    } else if (typeof value === "object" && value !== null) {
      for (const [key, item] of Object.entries(value)) stack.push({ value: item, path: path ? `${path}.${key}` : key });
    }
  }
  return null;
}
