import { z } from 'zod';
import { getEventHash } from 'nostr-tools/pure';
import type { Event, EventTemplate } from 'nostr-tools/pure';
import { xOnlyPointFromScalar } from 'tiny-secp256k1';
import { bytesToHex, hex32, hex64, hexToBytes } from './hex.ts';
import { signSchnorr, verifySchnorr } from './schnorr.ts';

/**
 * Nostr events are signed and verified through libsecp256k1 (src/protocol/schnorr.ts, native or
 * WASM, as the other BIP-340 signatures), with the public key derived once per key rather than
 * on every signature as nostr-tools' and nostr-wasm's finalizeEvent do (bench/HISTORY.md). The
 * event id is the NIP-01 hash computed by nostr-tools.
 */

export type { Event as NostrEvent } from 'nostr-tools/pure';

/** The shape of a signed Nostr event (NIP-01); the signature is checked by `hasValidSignature`. */
export const nostrEventSchema = z.strictObject({
  id: hex32,
  pubkey: hex32,
  created_at: z.number().int().nonnegative(),
  kind: z.number().int().nonnegative().max(65535),
  tags: z.array(z.array(z.string())),
  content: z.string(),
  sig: hex64,
});

/** Public keys of the secret keys this process signs with (the arrays are never changed after they are made). */
const publicKeys = new WeakMap<Uint8Array, string>();

export function publicKeyOf(secretKey: Uint8Array): string {
  let pubkey = publicKeys.get(secretKey);
  if (pubkey === undefined) {
    pubkey = bytesToHex(xOnlyPointFromScalar(secretKey));
    publicKeys.set(secretKey, pubkey);
  }
  return pubkey;
}

/** Signs an event template with a secret key; the template itself is left as it is. */
export function signEvent(template: EventTemplate, secretKey: Uint8Array): Event {
  const unsigned = { kind: template.kind, created_at: template.created_at, tags: template.tags, content: template.content, pubkey: publicKeyOf(secretKey) };
  const id = getEventHash(unsigned);
  return { ...unsigned, id, sig: bytesToHex(signSchnorr(hexToBytes(id), secretKey)) };
}

const LOWER_HEX_64 = /^[0-9a-f]{64}$/;
const LOWER_HEX_128 = /^[0-9a-f]{128}$/;

/** The fields a signature check reads, exactly as NIP-01 has them (hex strictly lower-case and of full length). */
function wellFormed(event: Event): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const { id, pubkey, sig, created_at, kind, tags, content } = event;
  if (typeof id !== 'string' || !LOWER_HEX_64.test(id)) return false;
  if (typeof pubkey !== 'string' || !LOWER_HEX_64.test(pubkey)) return false;
  if (typeof sig !== 'string' || !LOWER_HEX_128.test(sig)) return false;
  if (!Number.isSafeInteger(created_at) || created_at < 0) return false;
  if (!Number.isInteger(kind) || kind < 0 || kind > 65535) return false;
  if (typeof content !== 'string' || !Array.isArray(tags)) return false;
  for (const tag of tags) {
    if (!Array.isArray(tag)) return false;
    for (const value of tag) if (typeof value !== 'string') return false;
  }
  return true;
}

/**
 * Signatures already found valid, by id, pubkey and signature. Whether a BIP-340 signature is
 * valid depends on those three values only, and the id is always recomputed from the event's
 * fields first, so a hit proves the event as well as a fresh check would. The same grant is
 * checked on every payment it authorizes; this makes the repeats cost one hash.
 */
const VERIFIED_CAPACITY = 8_192;
const verified = new Set<string>();

/** True when the event's id and BIP-340 signature are valid. */
export function hasValidSignature(event: Event): boolean {
  if (!wellFormed(event)) return false;
  const { id, pubkey, created_at, kind, tags, content, sig } = event;
  if (getEventHash({ pubkey, created_at, kind, tags, content }) !== id) return false;
  const memo = id + pubkey + sig;
  if (verified.has(memo)) return true;
  if (!verifySchnorr(hexToBytes(sig), hexToBytes(id), hexToBytes(pubkey))) return false;
  if (verified.size >= VERIFIED_CAPACITY) verified.delete(verified.values().next().value!);
  verified.add(memo);
  return true;
}

/** The first value of the first tag named `name`. */
export function tagValue(event: Pick<Event, 'tags'>, name: string): string | undefined {
  return event.tags.find((t) => t[0] === name)?.[1];
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
