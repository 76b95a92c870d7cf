import type { ExpressionBuilder } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { BalanceUpdate } from '../protocol/vault-proof.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import type { Trx } from './journal.ts';
import type { WalletContext } from './context.ts';

/**
 * The update when both channel peers of the operator signed it, else null. One that does not
 * verify is logged and proves nothing.
 */
export function verifiedBalanceUpdate(ctx: WalletContext, operatorPubkey: string, update: BalanceUpdate | null): BalanceUpdate | null {
  if (!update) return null;
  const op = ctx.operators.get(operatorPubkey);
  if (!op) return null;
  const verified = verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey);
  if (!verified.ok) {
    ctx.logger.error({ operator: op.name, deposit: update.deposit_id, reason: verified.error.message }, 'vault sent a balance update that does not verify');
    return null;
  }
  return update;
}

/**
 * SET values of a deposits UPDATE that keep a balance update (its seq and balance) as the newest
 * signed balance, unless a newer one is stored; with a null seq they keep what is stored.
 */
export function newestBalanceSet(eb: ExpressionBuilder<Database, 'deposits'>, seq: number | null, balanceMsat: bigint | null) {
  const updateSeq = eb.cast<number>(eb.val(seq), 'integer');
  const newer = eb.and([eb(updateSeq, 'is not', null), eb.or([eb('deposits.vault_balance_seq', 'is', null), eb('deposits.vault_balance_seq', '<', updateSeq)])]);
  return {
    vault_balance_msat: eb.case().when(newer).then(eb.cast<bigint>(eb.val(balanceMsat), 'bigint')).else(eb.ref('deposits.vault_balance_msat')).end(),
    vault_balance_seq: eb.case().when(newer).then(updateSeq).else(eb.ref('deposits.vault_balance_seq')).end(),
  };
}

/**
 * Keeps the newest balance both channel peers signed for a deposit, after checking both
 * signatures. An update that does not verify is logged and ignored: it proves nothing.
 */
export async function recordBalanceUpdate(ctx: WalletContext, trx: Trx, depositId: bigint, operatorPubkey: string, update: BalanceUpdate | null): Promise<void> {
  const verified = verifiedBalanceUpdate(ctx, operatorPubkey, update);
  if (!verified) return;
  await trx
    .updateTable('deposits')
    .set({ vault_balance_msat: verified.balance_msat, vault_balance_seq: verified.seq })
    .where('id', '=', depositId)
    .where((eb) => eb.or([eb('vault_balance_seq', 'is', null), eb('vault_balance_seq', '<', verified.seq)]))
    .execute();
}
