import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { KIND } from './kinds.ts';
import { hasValidSignature, signEvent } from './nostr-event.ts';
import { fail, ok, type Result } from './result.ts';

/**
 * A user's request to open a deposit at vault operators. It moves no money, so it has no
 * freshness window: a bridge may present it again to open the user's deposit at an operator
 * added later, and operators keep one deposit per user, so a replay opens nothing new.
 */
export function signDepositOpen(userSecretKey: Uint8Array, createdAt = Math.floor(Date.now() / 1000)): Event {
  return signEvent({ kind: KIND.depositOpen, created_at: createdAt, tags: [], content: '' }, userSecretKey);
}

/** Returns the owner of a valid deposit-open statement. */
export function verifyDepositOpen(event: Event): Result<string> {
  if (event.kind !== KIND.depositOpen) return fail('BAD_REQUEST', `deposit open must be kind ${KIND.depositOpen}`);
  if (!hasValidSignature(event)) return fail('UNAUTHORIZED', 'deposit open signature is invalid');
  return ok(event.pubkey);
}

/** A user's emergency lock (`locked: true`) or unlock of every deposit they own. Newest wins. */
export function signDepositLock(userSecretKey: Uint8Array, locked: boolean, createdAt = Math.floor(Date.now() / 1000)): Event {
  return signEvent(
    { kind: KIND.depositLock, created_at: createdAt, tags: [['d', 'deposit-lock']], content: JSON.stringify({ locked }) },
    userSecretKey,
  );
}

const lockContentSchema = z.strictObject({ locked: z.boolean() });

export interface DepositLock {
  owner: string;
  locked: boolean;
  createdAt: number;
}

export function verifyDepositLock(event: Event): Result<DepositLock> {
  if (event.kind !== KIND.depositLock) return fail('BAD_REQUEST', `deposit lock must be kind ${KIND.depositLock}`);
  if (!hasValidSignature(event)) return fail('UNAUTHORIZED', 'deposit lock signature is invalid');
  let content: unknown;
  try {
    content = JSON.parse(event.content);
  } catch {
    return fail('BAD_REQUEST', 'deposit lock content is not JSON');
  }
  const parsed = lockContentSchema.safeParse(content);
  if (!parsed.success) return fail('BAD_REQUEST', 'deposit lock content must be {"locked": true|false}');
  return ok({ owner: event.pubkey, locked: parsed.data.locked, createdAt: event.created_at });
}
