import type { Event } from 'nostr-tools/pure';
import { GRANT_MAX_SKEW_SECONDS } from '../protocol/grant.ts';
import { verifyDepositLock } from '../protocol/user-statements.ts';
import { ApiRefusal } from './api-refusal.ts';
import type { WalletContext } from './context.ts';

export interface LockOutcome {
  locked: boolean;
  /** What each vault operator said; a vault that did not take it should be sent it again. */
  operators: { name: string; nodePubkey: string; ok: boolean; error?: string }[];
}

/**
 * The emergency lock (or unlock), signed by the user: the bridge stops admitting payments for
 * the user at once, and forwards the very statement to every vault holding a deposit of theirs,
 * where it holds even against a bridge that ignores it. The newest statement wins.
 */
export async function applyUserLock(ctx: WalletContext, authPubkey: string, lockEvent: Event): Promise<LockOutcome> {
  const lock = verifyDepositLock(lockEvent);
  if (!lock.ok) throw new ApiRefusal('BAD_REQUEST', lock.error.message);
  if (lock.value.owner !== authPubkey) throw new ApiRefusal('FORBIDDEN', 'the lock must be signed by the key that signs the request');
  if (lock.value.createdAt > ctx.now() + GRANT_MAX_SKEW_SECONDS) throw new ApiRefusal('BAD_REQUEST', 'the lock is dated in the future');
  const user = await ctx.db.selectFrom('users').select('pubkey').where('pubkey', '=', authPubkey).executeTakeFirst();
  if (!user) throw new ApiRefusal('NOT_FOUND', 'no deposits are known for this key');
  const stored = await ctx.db
    .updateTable('users')
    .set({ locked: lock.value.locked, lock_event: JSON.stringify(lockEvent), lock_created_at: lock.value.createdAt })
    .where('pubkey', '=', authPubkey)
    .where((eb) => eb.or([eb('lock_created_at', 'is', null), eb('lock_created_at', '<', BigInt(lock.value.createdAt))]))
    .returning('locked')
    .executeTakeFirst();
  if (!stored) throw new ApiRefusal('CONFLICT', 'a newer lock statement is already in force');
  ctx.logger.warn({ user: authPubkey, locked: lock.value.locked }, 'user lock changed');

  const deposits = await ctx.db.selectFrom('deposits').select(['operator_pubkey', 'remote_deposit_id']).where('user_pubkey', '=', authPubkey).execute();
  const operators = await Promise.all(
    deposits.map(async (d) => {
      const op = ctx.operators.get(d.operator_pubkey);
      if (!op) return { name: d.operator_pubkey, nodePubkey: d.operator_pubkey, ok: false, error: 'operator not connected' };
      try {
        await op.client.lock(d.remote_deposit_id, lockEvent);
        return { name: op.name, nodePubkey: op.nodePubkey, ok: true };
      } catch (error) {
        return { name: op.name, nodePubkey: op.nodePubkey, ok: false, error: error instanceof Error ? error.message : String(error) };
      }
    }),
  );
  return { locked: lock.value.locked, operators };
}
