import { finalizeEvent, generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { KIND } from '../../src/protocol/kinds.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { signDepositLock, signDepositOpen, verifyDepositLock, verifyDepositOpen } from '../../src/protocol/user-statements.ts';

const user = generateSecretKey();
const owner = getPublicKey(user);
const other = generateSecretKey();

describe('deposit open statements', () => {
  it('round trips: verifyDepositOpen returns the signer as owner', () => {
    expect(verifyDepositOpen(signDepositOpen(user, 1_767_225_600))).toEqual({ ok: true, value: owner });
  });

  it('is a kind 21348 event with empty content', () => {
    const event = signDepositOpen(user, 1_767_225_600);
    expect(event.kind).toBe(KIND.depositOpen);
    expect(event.kind).toBe(21348);
    expect(event.content).toBe('');
    expect(event.created_at).toBe(1_767_225_600);
  });

  it('has no freshness window: an old statement still names its owner', () => {
    expect(verifyDepositOpen(signDepositOpen(user, 1)).ok).toBe(true);
  });

  it('survives a JSON round trip', () => {
    expect(verifyDepositOpen(JSON.parse(JSON.stringify(signDepositOpen(user)))).ok).toBe(true);
  });

  it.each<[string, () => Event, VaultErrorCode]>([
    ['refuses an event of another kind', () => finalizeEvent({ kind: 1, created_at: 1, tags: [], content: '' }, user), 'BAD_REQUEST'],
    ['refuses a deposit lock given as an open', () => signDepositLock(user, true), 'BAD_REQUEST'],
    ['refuses a statement claimed for another owner', () => ({ ...signDepositOpen(other), pubkey: owner }), 'UNAUTHORIZED'],
    ['refuses a statement whose date was changed after signing', () => ({ ...signDepositOpen(user, 100), created_at: 200 }), 'UNAUTHORIZED'],
    ['refuses a statement with an altered signature', () => {
      const event = signDepositOpen(user);
      return { ...event, sig: (event.sig[0] === 'a' ? 'b' : 'a') + event.sig.slice(1) };
    }, 'UNAUTHORIZED'],
  ])('%s', (_, make, code) => {
    const result = verifyDepositOpen(make());
    expect(result.ok ? 'accepted' : result.error.code).toBe(code);
  });
});

describe('deposit lock statements', () => {
  it.each([true, false])('round trips locked = %s with the owner and date', (locked) => {
    expect(verifyDepositLock(signDepositLock(user, locked, 1_767_225_600))).toEqual({ ok: true, value: { owner, locked, createdAt: 1_767_225_600 } });
  });

  it('is a replaceable kind 31349 event with content {"locked": …}', () => {
    const event = signDepositLock(user, true, 1_767_225_600);
    expect(event.kind).toBe(KIND.depositLock);
    expect(event.kind).toBe(31349);
    expect(event.tags).toEqual([['d', 'deposit-lock']]);
    expect(JSON.parse(event.content)).toEqual({ locked: true });
  });

  const signedLock = (content: string) => finalizeEvent({ kind: KIND.depositLock, created_at: 1, tags: [['d', 'deposit-lock']], content }, user);

  it.each<[string, () => Event, VaultErrorCode]>([
    ['refuses an event of another kind', () => finalizeEvent({ kind: 1, created_at: 1, tags: [], content: '{"locked":true}' }, user), 'BAD_REQUEST'],
    ['refuses a deposit open given as a lock', () => signDepositOpen(user), 'BAD_REQUEST'],
    ['refuses an unlock made from a signed lock', () => ({ ...signDepositLock(user, true), content: '{"locked":false}' }), 'UNAUTHORIZED'],
    ['refuses a lock claimed for another owner', () => ({ ...signDepositLock(other, false), pubkey: owner }), 'UNAUTHORIZED'],
    ['refuses signed content that is not JSON', () => signedLock('locked'), 'BAD_REQUEST'],
    ['refuses signed content with locked as a string', () => signedLock('{"locked":"false"}'), 'BAD_REQUEST'],
    ['refuses signed content without locked', () => signedLock('{}'), 'BAD_REQUEST'],
    ['refuses signed content with an unknown field', () => signedLock('{"locked":false,"until":0}'), 'BAD_REQUEST'],
  ])('%s', (_, make, code) => {
    const result = verifyDepositLock(make());
    expect(result.ok ? 'accepted' : result.error.code).toBe(code);
  });
});
