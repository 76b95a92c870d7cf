import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { hex32, hexToBytes } from './hex.ts';
import { HTTP_AUTH_WINDOW_SECONDS, payloadHash } from './nip98.ts';
import { fail, ok, type Result } from './result.ts';

/**
 * Session-signed Vault API calls (docs/vault-api.md, "Sessions"). A caller proves its key once
 * with NIP-98 (`POST /v0/sessions`) and gets a session id and a secret; each later call carries
 * an HMAC-SHA256 under that secret of what NIP-98 would have signed (method, absolute URL, time,
 * body hash), so it binds the same things for a few microseconds instead of a BIP-340 signature
 * made and checked on every call.
 */

export const SESSION_AUTH_SCHEME = 'NostrSession';

/** 16 bytes as 32 lowercase hex characters. */
const hex16 = z.string().regex(/^[0-9a-f]{32}$/, 'expected 32 lowercase hex characters');

export const vaultSessionSchema = z.object({
  session_id: hex16,
  secret: hex32,
  expires_at: z.number().int().positive(),
});
export type VaultSession = z.output<typeof vaultSessionSchema>;

/** What a session MAC signs: the domain, then the same fields as a NIP-98 event, one per line. */
function signedText(method: string, url: string, createdAt: number, body: string | Uint8Array | undefined): string {
  const hasBody = body !== undefined && body.length > 0;
  return `deposit-bridge/vault-session\n${method.toUpperCase()}\n${url}\n${createdAt}\n${hasBody ? payloadHash(body) : ''}`;
}

/** A session's secret as a key for HMAC: made once per session, since importing it costs more than the MAC itself. */
export function sessionKey(secretHex: string): KeyObject {
  return createSecretKey(hexToBytes(secretHex));
}

function mac(key: KeyObject, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** The `Authorization` header value for a call within the session `sessionId`, whose key is `key`. */
export function sessionAuthHeader(sessionId: string, key: KeyObject, url: string, method: string, body: string | undefined, nowSec: number): string {
  return `${SESSION_AUTH_SCHEME} ${sessionId}:${nowSec}:${mac(key, signedText(method, url, nowSec, body)).toString('hex')}`;
}

export interface SessionAuth {
  sessionId: string;
  createdAt: number;
  mac: Uint8Array;
}

/** The parts of a session `Authorization` header; null when the header is not of this scheme. */
export function parseSessionAuth(header: string | undefined): Result<SessionAuth> | null {
  if (header === undefined) return null;
  const trimmed = header.trim();
  if (trimmed !== SESSION_AUTH_SCHEME && !trimmed.startsWith(`${SESSION_AUTH_SCHEME} `)) return null;
  const match = /^([0-9a-f]{32}):(0|[1-9][0-9]{0,11}):([0-9a-f]{64})$/.exec(trimmed.slice(SESSION_AUTH_SCHEME.length).trim());
  if (!match) return fail('UNAUTHORIZED', `${SESSION_AUTH_SCHEME} header must be <session id>:<unix seconds>:<hex HMAC>`);
  return ok({ sessionId: match[1]!, createdAt: Number(match[2]), mac: hexToBytes(match[3]!) });
}

/** Checks a parsed session header against the session's secret and the call as received. */
export function verifySessionAuth(
  auth: SessionAuth,
  key: KeyObject,
  url: string,
  method: string,
  body: string | Uint8Array | undefined,
  nowSec: number,
): Result<void> {
  if (Math.abs(auth.createdAt - nowSec) > HTTP_AUTH_WINDOW_SECONDS) return fail('UNAUTHORIZED', 'session signature is outside the time window');
  // One comparison for the whole call: a wrong URL, method, body or key all read the same.
  if (!timingSafeEqual(auth.mac, mac(key, signedText(method, url, auth.createdAt, body)))) {
    return fail('UNAUTHORIZED', 'session signature does not match this call');
  }
  return ok(undefined);
}
