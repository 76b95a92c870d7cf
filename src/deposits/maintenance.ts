import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import type { Msat } from '../protocol/amounts.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { verifyBalanceUpdate, type BalanceUpdate } from '../protocol/vault-proof.ts';
import type { WalletContext } from './context.ts';
import { recordIncident } from './incidents.ts';
import { changeDepositMoney, inTransaction } from './journal.ts';
import { recordBalanceUpdate } from './vault-records.ts';

export interface MaintenanceCharge {
  remoteDepositId: string;
  feeMsat: Msat;
  fromHeight: number;
  toHeight: number;
  balanceUpdate: BalanceUpdate;
}

/** What marks a maintenance fee among a user's transactions (metadata.kind). */
export const MAINTENANCE_KIND = 'maintenance_fee';

/**
 * A name for the charge that is the same however often the vault reports it (and when a restore
 * reads it from the history), in the place a payment keeps its hash: one row per charge.
 */
export function maintenanceChargeId(operatorPubkey: string, remoteDepositId: string, fromHeight: number, toHeight: number): string {
  return bytesToHex(sha256(utf8ToBytes(`maintenance:${operatorPubkey}:${remoteDepositId}:${fromHeight}-${toHeight}`)));
}

/**
 * Records an operator's maintenance fee as a settled outgoing transaction of its own and takes
 * it from the deposit's balance, once. Only a charge whose new balance both channel peers
 * signed is applied; any other is an incident (reconciliation then shows the difference).
 */
export async function applyMaintenanceCharge(ctx: WalletContext, operatorPubkey: string, charge: MaintenanceCharge): Promise<boolean> {
  const op = ctx.operators.get(operatorPubkey);
  const deposit = await ctx.db
    .selectFrom('deposits')
    .select(['id', 'user_pubkey'])
    .where('operator_pubkey', '=', operatorPubkey)
    .where('remote_deposit_id', '=', charge.remoteDepositId)
    .executeTakeFirst();
  if (!op || !deposit || charge.feeMsat <= 0n) return false;
  const signed = verifyBalanceUpdate(charge.balanceUpdate, op.nodePubkey, op.peerNodePubkey).ok && charge.balanceUpdate.deposit_id === charge.remoteDepositId;
  if (!signed) {
    await recordIncident(ctx, {
      operatorPubkey,
      userPubkey: deposit.user_pubkey,
      kind: 'invalid_balance_update',
      message: `a maintenance fee of ${charge.feeMsat} msat came without a balance signed by both channel peers`,
      evidence: { deposit: charge.remoteDepositId, fee_msat: charge.feeMsat.toString(), from_height: charge.fromHeight, to_height: charge.toHeight },
    });
    return false;
  }
  const paymentHash = maintenanceChargeId(operatorPubkey, charge.remoteDepositId, charge.fromHeight, charge.toHeight);
  return inTransaction(ctx.db, async (trx) => {
    // The deposit's row lock orders concurrent reports of the same charge.
    await trx.selectFrom('deposits').select('id').where('id', '=', deposit.id).forNoKeyUpdate().executeTakeFirstOrThrow();
    const known = await trx.selectFrom('transactions').select('id').where('deposit_id', '=', deposit.id).where('payment_hash', '=', paymentHash).executeTakeFirst();
    if (known) return false;
    const now = ctx.now();
    const tx = await trx
      .insertInto('transactions')
      .values({
        user_pubkey: deposit.user_pubkey,
        deposit_id: deposit.id,
        connection_pubkey: null,
        type: 'outgoing',
        state: 'settled',
        step: 'final',
        payment_hash: paymentHash,
        invoice: '',
        description: `maintenance fee to ${op.name} for blocks ${charge.fromHeight}–${charge.toHeight}`,
        description_hash: null,
        preimage: null,
        amount_msat: charge.feeMsat,
        fee_msat: 0n,
        fee_reserve_msat: 0n,
        request_event_id: null,
        idempotency_key: null,
        failure_reason: null,
        metadata: JSON.stringify({ kind: MAINTENANCE_KIND, operator: operatorPubkey, from_height: charge.fromHeight, to_height: charge.toHeight }),
        created_at: now,
        expires_at: null,
        settled_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await changeDepositMoney(trx, { depositId: deposit.id, transactionId: tx.id, kind: 'debit', confirmedDeltaMsat: -charge.feeMsat, reservedDeltaMsat: 0n });
    await recordBalanceUpdate(ctx, trx, deposit.id, operatorPubkey, charge.balanceUpdate);
    return true;
  });
}
