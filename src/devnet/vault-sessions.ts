import { randomBytes, type KeyObject } from 'node:crypto';
import { fail, ok, type Result } from '../protocol/result.ts';
import { sessionKey, verifySessionAuth, type SessionAuth, type VaultSession } from '../protocol/vault-session.ts';

/** How long a session lasts; the client opens the next one a few minutes before. */
export const SESSION_TTL_SECONDS = 3_600;
/** Sessions held at once: the oldest goes first past this, so a flood of keys cannot grow memory. */
const MAX_SESSIONS = 10_000;

interface OpenSession {
  caller: string;
  key: KeyObject;
  expiresAt: number;
}

/**
 * The operator's open sessions (docs/vault-api.md, "Sessions"), in memory: a restart forgets
 * them all, and callers open new ones when told SESSION_EXPIRED.
 */
export class VaultSessions {
  readonly #sessions = new Map<string, OpenSession>();

  /** A new session for `caller`, whose key NIP-98 has just proved. */
  open(caller: string, nowSec: number): VaultSession {
    for (const [id, session] of this.#sessions) {
      if (session.expiresAt > nowSec && this.#sessions.size < MAX_SESSIONS) break;
      // Insertion order is expiry order (one lifetime for all): expired and over-cap ones leave from the front.
      this.#sessions.delete(id);
    }
    const session = { session_id: randomBytes(16).toString('hex'), secret: randomBytes(32).toString('hex'), expires_at: nowSec + SESSION_TTL_SECONDS };
    this.#sessions.set(session.session_id, { caller, key: sessionKey(session.secret), expiresAt: session.expires_at });
    return session;
  }

  /** The caller of a session-signed call, or why it is refused. */
  caller(auth: SessionAuth, url: string, method: string, body: string | undefined, nowSec: number): Result<string> {
    const session = this.#sessions.get(auth.sessionId);
    if (session === undefined || session.expiresAt <= nowSec) return fail('SESSION_EXPIRED', 'no such session, or it has expired: open a new one');
    const verified = verifySessionAuth(auth, session.key, url, method, body, nowSec);
    return verified.ok ? ok(session.caller) : verified;
  }
}
