import { randomBytes, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "p2p_ui";
const SESSION_TTL_MS = 12 * 3_600_000;
/** Sessions kept at most; past it the oldest is dropped (its browser logs in again). */
const MAX_SESSIONS = 1_000;

export interface Session {
  id: string;
  csrf: string;
  expiresAt: number;
}

/** Equal strings, compared in time that does not depend on where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Dashboard logins, in memory only: a random session id (the cookie) and its CSRF token, with an expiry.
 * The operator token itself is never stored in a session or sent back to the browser.
 */
export class Sessions {
  /** Insertion order is creation order, so the first key is the oldest session. */
  private readonly byId = new Map<string, Session>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly max = MAX_SESSIONS,
  ) {}

  create(): Session {
    const now = this.now();
    for (const [id, s] of this.byId) {
      if (s.expiresAt > now && this.byId.size < this.max) break;
      this.byId.delete(id);
    }
    const session = {
      id: randomBytes(32).toString("base64url"),
      csrf: randomBytes(32).toString("base64url"),
      expiresAt: now + SESSION_TTL_MS,
    };
    this.byId.set(session.id, session);
    return session;
  }

  /** The live session a request's cookie names, if any. */
  fromRequest(request: Request): Session | null {
    const id = cookieValue(request.headers.get("cookie"), SESSION_COOKIE);
    if (!id) return null;
    const session = this.byId.get(id);
    if (!session) return null;
    if (session.expiresAt <= this.now()) {
      this.byId.delete(id);
      return null;
    }
    return session;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

export function cookieValue(header: string | null, name: string): string | null {
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return null;
}

export function sessionCookie(session: Session): string {
  const maxAge = Math.floor(SESSION_TTL_MS / 1000);
  return `${SESSION_COOKIE}=${session.id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=${maxAge}`;
}

export const CLEARED_COOKIE = `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0`;
