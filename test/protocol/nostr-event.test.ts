import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { hasValidSignature, nostrEventSchema, publicKeyOf, signEvent, tagValue } from '../../src/protocol/nostr-event.ts';

const secret = generateSecretKey();

describe('hasValidSignature', () => {
  it('accepts a freshly signed event and its JSON round trip', () => {
    const event = signEvent({ kind: 1, created_at: 1, tags: [], content: 'hello' }, secret);
    expect(hasValidSignature(event)).toBe(true);
    expect(hasValidSignature(JSON.parse(JSON.stringify(event)))).toBe(true);
  });

  it('refuses a copy of a signed event whose content was changed (no cached verdict carried over)', () => {
    const event = finalizeEvent({ kind: 1, created_at: 1, tags: [], content: 'pay 1 sat' }, secret);
    expect(hasValidSignature({ ...event, content: 'pay 1000000 sat' })).toBe(false);
  });

  it('refuses a signed event changed in place after it was verified', () => {
    const event = signEvent({ kind: 1, created_at: 1, tags: [['p', 'a']], content: 'x' }, secret);
    expect(hasValidSignature(event)).toBe(true);
    event.tags = [['p', 'b']];
    expect(hasValidSignature(event)).toBe(false);
  });

  it('refuses an event whose pubkey is not the signer', () => {
    const event = signEvent({ kind: 1, created_at: 1, tags: [], content: 'x' }, secret);
    expect(hasValidSignature({ ...JSON.parse(JSON.stringify(event)), pubkey: getPublicKey(generateSecretKey()) })).toBe(false);
  });
});

describe('nostrEventSchema', () => {
  const event = JSON.parse(JSON.stringify(signEvent({ kind: 23194, created_at: 1, tags: [['p', 'a']], content: 'x' }, secret)));

  it('accepts a signed event', () => {
    expect(nostrEventSchema.safeParse(event).success).toBe(true);
  });

  it.each<[string, unknown]>([
    ['an uppercase id', { ...event, id: event.id.toUpperCase() }],
    ['a short signature', { ...event, sig: event.sig.slice(2) }],
    ['an extra field', { ...event, relay: 'wss://x' }],
    ['a tag that is not a list of strings', { ...event, tags: [['p', 1]] }],
    ['a kind above 65535', { ...event, kind: 65536 }],
    ['a fractional created_at', { ...event, created_at: 1.5 }],
  ])('refuses %s', (_, body) => {
    expect(nostrEventSchema.safeParse(body).success).toBe(false);
  });
});

describe('tagValue and publicKeyOf', () => {
  it('returns the value of the first tag with the name, or undefined', () => {
    const tags = [['p', 'first'], ['e', 'x'], ['p', 'second'], ['d']];
    expect(tagValue({ tags }, 'p')).toBe('first');
    expect(tagValue({ tags }, 'd')).toBeUndefined();
    expect(tagValue({ tags }, 'expiration')).toBeUndefined();
  });

  it('publicKeyOf gives the x-only Nostr key', () => {
    expect(publicKeyOf(secret)).toBe(getPublicKey(secret));
  });
});
