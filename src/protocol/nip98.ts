import { createHash } from 'node:crypto';
import { base64 } from '@scure/base';
import type { Event } from 'nostr-tools/pure';
import { KIND } from './kinds.ts';
import { hasValidSignature, nostrEventSchema, signEvent, tagValue } from './nostr-event.ts';
import { fail, ok, type Result } from './result.ts';

/** NIP-98: how far created_at may lie from the server's clock. */
export const HTTP_AUTH_WINDOW_SECONDS = 60;

/** The hex SHA-256 of a body (a string as UTF-8): OpenSSL's, about four times faster than JS on a payment's few kilobytes. */
export function payloadHash(body: string | Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * The `Authorization` header value for an HTTP request (NIP-98): a kind 27235 event with the
 * absolute URL, the method and, when there is a body, its SHA-256.
 */
export function httpAuthHeader(secretKey: Uint8Array, url: string, method: string, body?: string): string {
  const tags = [
    ['u', url],
    ['method', method.toUpperCase()],
  ];
  if (body !== undefined && body.length > 0) tags.push(['payload', payloadHash(body)]);
  const event = signEvent({ kind: KIND.httpAuth, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, secretKey);
  return `Nostr ${base64.encode(new TextEncoder().encode(JSON.stringify(event)))}`;
}

/**
 * Verifies a NIP-98 `Authorization` header for a request to `url` with `method` and raw `body`.
 * Returns the signer's pubkey.
 */
export function verifyHttpAuth(
  header: string | undefined,
  url: string,
  method: string,
  body: string | Uint8Array | undefined,
  nowSec: number,
): Result<string> {
  if (!header) return fail('UNAUTHORIZED', 'missing Authorization header (NIP-98)');
  const match = /^Nostr\s+([A-Za-z0-9+/=]+)$/.exec(header.trim());
  if (!match?.[1]) return fail('UNAUTHORIZED', 'Authorization header is not a NIP-98 token');
  let event: Event;
  try {
    const parsed = nostrEventSchema.safeParse(JSON.parse(new TextDecoder().decode(base64.decode(match[1]))));
    if (!parsed.success) return fail('UNAUTHORIZED', 'NIP-98 token is not a Nostr event');
    event = parsed.data;
  } catch {
    return fail('UNAUTHORIZED', 'NIP-98 token is not base64 JSON');
  }
  if (event.kind !== KIND.httpAuth) return fail('UNAUTHORIZED', `NIP-98 event must be kind ${KIND.httpAuth}`);
  if (!hasValidSignature(event)) return fail('UNAUTHORIZED', 'NIP-98 signature is invalid');
  if (Math.abs(event.created_at - nowSec) > HTTP_AUTH_WINDOW_SECONDS) return fail('UNAUTHORIZED', 'NIP-98 token is outside the time window');
  if (tagValue(event, 'u') !== url) return fail('UNAUTHORIZED', 'NIP-98 token is for another URL');
  if (tagValue(event, 'method')?.toUpperCase() !== method.toUpperCase()) return fail('UNAUTHORIZED', 'NIP-98 token is for another method');
  const hasBody = body !== undefined && body.length > 0;
  const payload = tagValue(event, 'payload');
  if (hasBody && payload !== payloadHash(body)) return fail('UNAUTHORIZED', 'NIP-98 payload hash does not match the body');
  return ok(event.pubkey);
}
