export type LogLevel = "debug" | "info" | "warn" | "error";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Structured JSON lines on stdout, one object per event. An event's field named like the line's own keys (`t`,
 * `level`, `msg`, or a base key such as `node`) is written as `field.<name>`: it never passes for whose line it is.
 */
export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write = (line: string) => process.stdout.write(line),
): Logger {
  const own = new Set(["t", "level", "msg", ...Object.keys(base)]);
  const at = (lvl: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < RANK[level]) return;
    const extra: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(fields ?? {})) extra[own.has(key) ? `field.${key}` : key] = value;
    write(`${JSON.stringify({ t: new Date().toISOString(), level: lvl, ...base, msg, ...extra })}\n`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
