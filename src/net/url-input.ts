import { errorResponse } from "./errors.ts";
import { ROUTES } from "./route-table.ts";

export type UrlInput<T> = { ok: true; value: T } | { ok: false; response: Response };

const segments = (path: string) => path.replace(/\/+$/, "").split("/");

/** Whether a raw (still percent-encoded) path fits a table pattern such as `/work/:id/cancel`. */
export function pathMatches(pattern: string, pathname: string): boolean {
  const want = segments(pattern);
  const got = segments(pathname);
  return want.length === got.length && want.every((w, i) => (w.startsWith(":") ? got[i] !== "" : w === got[i]));
}

/** The methods the table serves on this path (HEAD with GET, as the server answers it); empty if none. */
export function allowedMethods(pathname: string): string[] {
  const methods = new Set<string>();
  for (const spec of Object.values(ROUTES)) {
    if (!pathMatches(spec.path, pathname)) continue;
    methods.add(spec.method);
    if (spec.method === "GET") methods.add("HEAD");
  }
  return [...methods].sort();
}

/** The ":name" values of a matched path, decoded here so a bad percent-encoding is a 400 that says so. */
export function pathParams(pattern: string, pathname: string): UrlInput<Record<string, string>> {
  const params: Record<string, string> = {};
  const got = segments(pathname);
  for (const [i, want] of segments(pattern).entries()) {
    if (!want.startsWith(":")) continue;
    const raw = got[i] ?? "";
    const value = decode(raw);
    if (value === null) return badEncoding(`params.${want.slice(1)}`, raw);
    params[want.slice(1)] = value;
  }
  return { ok: true, value: params };
}

/**
 * The query string as the schemas see it: one string per key, an array where a key repeats (which a
 * string field then refuses by name), and a 400 for a bad percent-encoding instead of a guess.
 */
export function queryValues(search: string): UrlInput<Record<string, string | string[]>> {
  const values = new Map<string, string | string[]>();
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const at = part.indexOf("=");
    const rawKey = at < 0 ? part : part.slice(0, at);
    const key = decode(rawKey.replaceAll("+", " "));
    if (key === null) return badEncoding("query", rawKey);
    const value = decode((at < 0 ? "" : part.slice(at + 1)).replaceAll("+", " "));
    if (value === null) return badEncoding(`query.${key}`, part.slice(at + 1));
    const seen = values.get(key);
    values.set(key, seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value]);
  }
  return { ok: true, value: Object.fromEntries(values) };
}

function decode(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

function badEncoding(field: string, raw: string): { ok: false; response: Response } {
  const found = JSON.stringify(raw.slice(0, 100));
  const expected = "valid percent-encoded UTF-8";
  return {
    ok: false,
    response: errorResponse(
      400,
      "bad_encoding",
      `${field}: bad percent-encoding, expected ${expected}, found ${found}`,
      {
        field,
        expected,
        found,
      },
    ),
  };
}
