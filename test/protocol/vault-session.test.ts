import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { parseSessionAuth, sessionAuthHeader as headerIn, sessionKey, verifySessionAuth, vaultSessionSchema } from '../../src/protocol/vault-session.ts';

const session = { session_id: '0123456789abcdef0123456789abcdef', secret: '11'.repeat(32) };
const url = 'https://vault.example/v0/deposits/dep_1/payments';
const body = '{"amount_msat":"1000"}';
const now = 1_800_000_000;
const sessionAuthHeader = (s: typeof session, u: string, method: string, b: string | undefined, at: number) => headerIn(s.session_id, sessionKey(s.secret), u, method, b, at);

const verify = (header: string, at: { url?: string; method?: string; body?: string | undefined; now?: number; secret?: string } = {}) => {
  const parsed = parseSessionAuth(header);
  if (parsed === null || !parsed.ok) throw new Error('not a session header');
  return verifySessionAuth(parsed.value, sessionKey(at.secret ?? session.secret), at.url ?? url, at.method ?? 'POST', 'body' in at ? at.body : body, at.now ?? now);
};

describe('session auth headers', () => {
  it('is the HMAC-SHA256 of the documented lines, computed here independently', () => {
    const text = ['deposit-bridge/vault-session', 'POST', url, String(now), bytesToHex(sha256(new TextEncoder().encode(body)))].join('\n');
    const expected = bytesToHex(hmac(sha256, hexToBytes(session.secret), new TextEncoder().encode(text)));
    expect(sessionAuthHeader(session, url, 'post', body, now)).toBe(`NostrSession ${session.session_id}:${now}:${expected}`);
    // Without a body the last line is empty.
    const bare = ['deposit-bridge/vault-session', 'GET', url, String(now), ''].join('\n');
    expect(sessionAuthHeader(session, url, 'GET', undefined, now)).toBe(
      `NostrSession ${session.session_id}:${now}:${bytesToHex(hmac(sha256, hexToBytes(session.secret), new TextEncoder().encode(bare)))}`,
    );
  });

  it('verifies for the call it was made for, within 60 s either side', () => {
    const header = sessionAuthHeader(session, url, 'POST', body, now);
    expect(verify(header)).toEqual({ ok: true, value: undefined });
    expect(verify(header, { now: now + 60 }).ok).toBe(true);
    expect(verify(header, { now: now - 60 }).ok).toBe(true);
    expect(verify(header, { now: now + 61 })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/time window/) } });
    expect(verify(header, { now: now - 61 }).ok).toBe(false);
  });

  it.each<[string, Parameters<typeof verify>[1]]>([
    ['another URL', { url: `${url}?x=1` }],
    ['another method', { method: 'PUT' }],
    ['another body', { body: '{"amount_msat":"1001"}' }],
    ['no body', { body: undefined }],
    ['another secret', { secret: '22'.repeat(32) }],
  ])('refuses %s', (_, at) => {
    expect(verify(sessionAuthHeader(session, url, 'POST', body, now), at)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/does not match/) } });
  });

  it('refuses a header whose time was changed, since the MAC covers it', () => {
    const header = sessionAuthHeader(session, url, 'POST', body, now).replace(`:${now}:`, `:${now + 1}:`);
    expect(verify(header).ok).toBe(false);
  });

  it('tells other schemes (null) from malformed session headers (UNAUTHORIZED)', () => {
    expect(parseSessionAuth(undefined)).toBeNull();
    expect(parseSessionAuth('Nostr abc=')).toBeNull();
    expect(parseSessionAuth('Bearer x')).toBeNull();
    for (const bad of ['NostrSession ', 'NostrSession abc:1:ff', `NostrSession ${session.session_id}:-1:${'00'.repeat(32)}`, `NostrSession ${session.session_id}:1:${'0'.repeat(63)}`, `NostrSession ${session.session_id.toUpperCase()}:1:${'00'.repeat(32)}`]) {
      expect(parseSessionAuth(bad), bad).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    }
  });

  it('reads a session as the operator sends it, and nothing looser', () => {
    const good = { session_id: session.session_id, secret: session.secret, expires_at: now + 3600 };
    expect(vaultSessionSchema.safeParse(good).success).toBe(true);
    expect(vaultSessionSchema.safeParse({ ...good, secret: 'ab' }).success).toBe(false);
    expect(vaultSessionSchema.safeParse({ ...good, session_id: 'x'.repeat(32) }).success).toBe(false);
    expect(vaultSessionSchema.safeParse({ ...good, expires_at: '1' }).success).toBe(false);
  });
});
