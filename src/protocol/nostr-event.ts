import { z } from 'zod';
import * as pure from 'nostr-tools/pure';
import * as wasm from 'nostr-tools/wasm';
import type { Event, EventTemplate } from 'nostr-tools/pure';
import { initNostrWasm } from 'nostr-wasm';
import { hex32, hex64 } from './hex.ts';

/**
 * Signing and verifying go through libsecp256k1 compiled to WASM (nostr-wasm, behind
 * nostr-tools' own interface), several times faster than the pure-JS curve; where WebAssembly
 * cannot start, the pure-JS functions of nostr-tools do the same work.
 */
const secp = await initNostrWasm().then(
  (instance) => {
    wasm.setNostrWasm(instance);
    return { finalizeEvent: wasm.finalizeEvent, verifyEvent: wasm.verifyEvent, getPublicKey: wasm.getPublicKey, engine: 'wasm' as const };
  },
  () => ({ finalizeEvent: pure.finalizeEvent, verifyEvent: pure.verifyEvent, getPublicKey: pure.getPublicKey, engine: 'pure-js' as const }),
);

/** Which secp256k1 implementation signs and verifies: `wasm` normally, `pure-js` as the fallback. */
export const SECP256K1_ENGINE: 'wasm' | 'pure-js' = secp.engine;

export type { Event as NostrEvent } from 'nostr-tools/pure';

/** The shape of a signed Nostr event (NIP-01); the signature is checked by `isSignedBy`. */
export const nostrEventSchema = z.strictObject({
  id: hex32,
  pubkey: hex32,
  created_at: z.number().int().nonnegative(),
  kind: z.number().int().nonnegative().max(65535),
  tags: z.array(z.array(z.string())),
  content: z.string(),
  sig: hex64,
});

/** Signs an event template with a secret key. */
export function signEvent(template: EventTemplate, secretKey: Uint8Array): Event {
  // The WASM signer fills in the object it is given: sign a copy, never the caller's template.
  return secp.finalizeEvent({ kind: template.kind, created_at: template.created_at, tags: template.tags, content: template.content }, secretKey);
}

const LOWER_HEX_64 = /^[0-9a-f]{64}$/;
const LOWER_HEX_128 = /^[0-9a-f]{128}$/;

/**
 * The fields a signature check reads, exactly as NIP-01 has them. The WASM verifier parses hex
 * leniently (a short, upper-case or non-hex id or signature could pass), so nothing else reaches it.
 */
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

/** True when the event's id and BIP-340 signature are valid. Never trusts a cached result. */
export function hasValidSignature(event: Event): boolean {
  // verifyEvent caches its answer on the object under a symbol, and a spread copies symbol keys
  // too: rebuild the event from its fields so that no cached mark (e.g. set by finalizeEvent
  // before the content was changed) can stand in for checking the id and signature.
  if (!wellFormed(event)) return false;
  const { id, pubkey, created_at, kind, tags, content, sig } = event;
  return secp.verifyEvent({ id, pubkey, created_at, kind, tags, content, sig });
}

export function publicKeyOf(secretKey: Uint8Array): string {
  return secp.getPublicKey(secretKey);
}

/** The first value of the first tag named `name`. */
export function tagValue(event: Pick<Event, 'tags'>, name: string): string | undefined {
  return event.tags.find((t) => t[0] === name)?.[1];
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
