import type { BalanceUpdate } from '../protocol/vault-proof.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import type { Trx } from './journal.ts';
import type { WalletContext } from './context.ts';

/**
 * Keeps the newest balance both channel peers signed for a deposit, after checking both
 * signatures. An update that does not verify is logged and ignored: it proves nothing.
 */
export async function recordBalanceUpdate(ctx: WalletContext, trx: Trx, depositId: bigint, operatorPubkey: string, update: BalanceUpdate | null): Promise<void> {
  if (!update) return;
  const op = ctx.operators.get(operatorPubkey);
  if (!op) return;
  const verified = verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey);
  if (!verified.ok) {
    ctx.logger.error({ operator: op.name, depositId: depositId.toString(), reason: verified.error.message }, 'vault sent a balance update that does not verify');
    return;
  }
  await trx
    .updateTable('deposits')
    .set({ vault_balance_msat: update.balance_msat, vault_balance_seq: update.seq })
    .where('id', '=', depositId)
    .where((eb) => eb.or([eb('vault_balance_seq', 'is', null), eb('vault_balance_seq', '<', update.seq)]))
    .execute();
}
