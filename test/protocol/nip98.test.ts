import { base64 } from '@scure/base';
import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KIND } from '../../src/protocol/kinds.ts';
import { HTTP_AUTH_WINDOW_SECONDS, httpAuthHeader, payloadHash, verifyHttpAuth } from '../../src/protocol/nip98.ts';
import { readVector } from '../vectors/generate.ts';

interface Nip98Vectors {
  pubkey: string;
  cases: { name: string; url: string; method: string; body: string | null; created_at: number; header: string }[];
}

const vectors = readVector<Nip98Vectors>('nip98.json');
const encodeToken = (value: unknown) => `Nostr ${base64.encode(new TextEncoder().encode(JSON.stringify(value)))}`;
const decodeToken = (header: string): Event => JSON.parse(new TextDecoder().decode(base64.decode(header.slice('Nostr '.length))));

describe('payloadHash', () => {
  it('is the hex SHA-256 of the body, for strings and bytes alike', () => {
    expect(payloadHash('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(payloadHash('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(payloadHash(new TextEncoder().encode('abc'))).toBe(payloadHash('abc'));
  });
});

describe('verifyHttpAuth on the NIP-98 vectors', () => {
  it.each(vectors.cases)('accepts the $name header at its own time and returns the signer', (v) => {
    expect(verifyHttpAuth(v.header, v.url, v.method, v.body ?? undefined, v.created_at)).toEqual({ ok: true, value: vectors.pubkey });
  });

  it.each(vectors.cases)('$name: accepts a clock up to 60 s either side, refuses 61 s', (v) => {
    const at = (now: number) => verifyHttpAuth(v.header, v.url, v.method, v.body ?? undefined, now).ok;
    expect(HTTP_AUTH_WINDOW_SECONDS).toBe(60);
    expect([at(v.created_at - 60), at(v.created_at + 60)]).toEqual([true, true]);
    expect([at(v.created_at - 61), at(v.created_at + 61)]).toEqual([false, false]);
  });
});

describe('httpAuthHeader and verifyHttpAuth', () => {
  const secret = generateSecretKey();
  const url = 'https://vault.example/v0/deposits/dep_1/payments';
  const body = '{"invoice":"lnbcrt1","amount_msat":"21000"}';
  const now = 1_767_225_600;

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(now * 1000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('round trips a POST with a body: returns the signer pubkey', () => {
    const header = httpAuthHeader(secret, url, 'POST', body);
    expect(verifyHttpAuth(header, url, 'POST', body, now)).toEqual({ ok: true, value: getPublicKey(secret) });
  });

  it('round trips a GET without a body', () => {
    const header = httpAuthHeader(secret, 'https://vault.example/v0/info', 'get');
    expect(verifyHttpAuth(header, 'https://vault.example/v0/info', 'GET', undefined, now).ok).toBe(true);
  });

  it('signs a kind 27235 event with u, uppercase method and the payload hash, dated now', () => {
    const event = decodeToken(httpAuthHeader(secret, url, 'post', body));
    expect(event.kind).toBe(KIND.httpAuth);
    expect(event.kind).toBe(27235);
    expect(event.created_at).toBe(now);
    expect(event.tags).toEqual([
      ['u', url],
      ['method', 'POST'],
      ['payload', payloadHash(body)],
    ]);
  });

  it('accepts the body as raw bytes', () => {
    const header = httpAuthHeader(secret, url, 'POST', body);
    expect(verifyHttpAuth(header, url, 'POST', new TextEncoder().encode(body), now).ok).toBe(true);
  });

  it('accepts the method in any case', () => {
    const header = httpAuthHeader(secret, url, 'POST', body);
    expect(verifyHttpAuth(header, url, 'post', body, now).ok).toBe(true);
  });

  const valid = () => httpAuthHeader(secret, url, 'POST', body);
  const resigned = (patch: (e: Event) => Partial<Event>, signer = secret) => {
    const event = decodeToken(valid());
    const changed = { ...event, ...patch(event) };
    return encodeToken(finalizeEvent({ kind: changed.kind, created_at: changed.created_at, tags: changed.tags, content: changed.content }, signer));
  };

  it.each<[string, () => [string | undefined, string, string, string | undefined]]>([
    ['a missing header', () => [undefined, url, 'POST', body]],
    ['an empty header', () => ['', url, 'POST', body]],
    ['another scheme', () => [valid().replace(/^Nostr/, 'Bearer'), url, 'POST', body]],
    ['a token with characters outside base64', () => ['Nostr !!!not-base64!!!', url, 'POST', body]],
    ['a token that is not valid base64', () => ['Nostr abc', url, 'POST', body]],
    ['base64 of something that is not JSON', () => [`Nostr ${base64.encode(new TextEncoder().encode('not json'))}`, url, 'POST', body]],
    ['base64 JSON that is not an event', () => [encodeToken({ kind: 27235 }), url, 'POST', body]],
    ['a token for another URL', () => [valid(), 'https://vault.example/v0/deposits/dep_2/payments', 'POST', body]],
    ['a token for the same path on another host', () => [valid(), url.replace('vault.example', 'evil.example'), 'POST', body]],
    ['a token for another method', () => [valid(), url, 'PUT', body]],
    ['a token for another body', () => [valid(), url, 'POST', body.replace('21000', '21001')]],
    ['a body the token has no payload hash for', () => [httpAuthHeader(secret, url, 'POST'), url, 'POST', body]],
    ['an event of another kind', () => [resigned(() => ({ kind: 1 })), url, 'POST', body]],
    ['a token 61 s old', () => [resigned((e) => ({ created_at: e.created_at - 61 })), url, 'POST', body]],
    ['a token 61 s in the future', () => [resigned((e) => ({ created_at: e.created_at + 61 })), url, 'POST', body]],
    [
      'a token whose URL was changed after signing',
      () => {
        const event = decodeToken(valid());
        return [encodeToken({ ...event, tags: [['u', 'https://vault.example/v0/info'], ...event.tags.slice(1)] }), 'https://vault.example/v0/info', 'POST', body];
      },
    ],
  ])('refuses %s', (_, make) => {
    const [header, u, method, b] = make();
    const result = verifyHttpAuth(header, u, method, b, now);
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
  });
});
