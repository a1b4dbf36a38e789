import * as v from "valibot";

/** Limits of a free-form JSON field: how deep its objects and arrays nest, and its size as UTF-8 JSON. */
export interface FreeFormLimits {
  maxDepth: number;
  maxBytes: number;
}

/** What every free-form field of a request may hold unless its schema says otherwise. */
export const FREE_FORM_DEPTH = 32;

/**
 * Checks a free-form JSON value without recursion (a value nested 100,000 deep is refused, not a stack
 * overflow): objects and arrays at most `maxDepth` deep, numbers finite, and then, only once the depth
 * is known to be small enough to encode, at most `maxBytes` of UTF-8 JSON.
 */
export function freeFormCheck<T>(limits: FreeFormLimits) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const problem = depthProblem(dataset.value, limits.maxDepth);
    if (problem) {
      addIssue({ message: problem.expected, received: problem.found });
      return;
    }
    const bytes = Buffer.byteLength(JSON.stringify(dataset.value) ?? "null", "utf8");
    if (bytes > limits.maxBytes) {
      addIssue({ message: `at most ${limits.maxBytes} bytes of JSON`, received: `${bytes} bytes` });
    }
  });
}

/** Any JSON value within the limits. */
export function freeForm(limits: FreeFormLimits) {
  return v.pipe(v.unknown(), freeFormCheck<unknown>(limits));
}

function depthProblem(value: unknown, maxDepth: number): { expected: string; found: string } | null {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { value: x, depth } = next;
    if (typeof x === "number" && !Number.isFinite(x)) return { expected: "finite numbers", found: String(x) };
    if (x === null || typeof x !== "object") continue;
    if (depth + 1 > maxDepth) {
      return {
        expected: `JSON nested at most ${maxDepth} levels deep`,
        found: `objects or arrays nested more than ${maxDepth} deep`,
      };
    }
    for (const child of Array.isArray(x) ? x : Object.values(x)) stack.push({ value: child, depth: depth + 1 });
  }
  return null;
}
