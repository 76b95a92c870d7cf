import { z } from 'zod';
import { finalizeEvent, getPublicKey, verifyEvent, type Event, type EventTemplate } from 'nostr-tools/pure';
import { hex32, hex64 } from './hex.ts';

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
  return finalizeEvent(template, secretKey);
}

/** True when the event's id and BIP-340 signature are valid. Never trusts a cached result. */
export function hasValidSignature(event: Event): boolean {
  // verifyEvent caches its answer on the object under a symbol, and a spread copies symbol keys
  // too: rebuild the event from its fields so that no cached mark (e.g. set by finalizeEvent
  // before the content was changed) can stand in for checking the id and signature.
  const { id, pubkey, created_at, kind, tags, content, sig } = event;
  return verifyEvent({ id, pubkey, created_at, kind, tags, content, sig });
}

export function publicKeyOf(secretKey: Uint8Array): string {
  return getPublicKey(secretKey);
}

/** The first value of the first tag named `name`. */
export function tagValue(event: Pick<Event, 'tags'>, name: string): string | undefined {
  return event.tags.find((t) => t[0] === name)?.[1];
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
