import { z } from 'zod';
import type { Msat } from '../protocol/amounts.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import type { WalletContext } from './context.ts';
import { recordIncident } from './incidents.ts';
import { refreshIncoming } from './invoices.ts';
import { refreshOutgoing } from './payments.ts';

export interface DepositReconciliation {
  userPubkey: string;
  operator: string;
  remoteDepositId: string;
  bridgeMsat: Msat;
  /** The balance both channel peers signed, or null when the vault could not be asked or signed nothing valid. */
  vaultMsat: Msat | null;
  status: 'agrees' | 'differs' | 'in_flight' | 'unreachable' | 'unsigned';
}

/**
 * Compares every deposit's journal balance with the balance its vault's two channel peers last
 * signed, after first asking the vaults about anything still pending. A difference is recorded
 * as an incident against the operator and shown to the user (audit log), once per distinct
 * difference. Payments in flight make a deposit not comparable for now; it is checked next time.
 */
export async function reconcile(ctx: WalletContext): Promise<DepositReconciliation[]> {
  const pending = await ctx.db.selectFrom('transactions').selectAll().where('state', '=', 'pending').execute();
  for (const tx of pending) {
    if (tx.type === 'incoming') await refreshIncoming(ctx, tx);
    else await refreshOutgoing(ctx, tx.id);
  }
  const deposits = await ctx.db.selectFrom('deposits').selectAll().orderBy('id').execute();
  const results: DepositReconciliation[] = [];
  for (const deposit of deposits) {
    const op = ctx.operators.get(deposit.operator_pubkey);
    const base = { userPubkey: deposit.user_pubkey, operator: op?.name ?? deposit.operator_pubkey, remoteDepositId: deposit.remote_deposit_id, bridgeMsat: deposit.confirmed_msat };
    if (!op) {
      results.push({ ...base, vaultMsat: null, status: 'unreachable' });
      continue;
    }
    let status;
    try {
      status = await op.client.depositStatus(deposit.remote_deposit_id);
    } catch {
      results.push({ ...base, vaultMsat: null, status: 'unreachable' });
      continue;
    }
    const update = status.balance_update;
    if (update === null) {
      // Nothing signed yet: only an untouched deposit may say so.
      results.push({ ...base, vaultMsat: null, status: deposit.confirmed_msat === 0n && status.balance_msat === 0n ? 'agrees' : 'unsigned' });
      continue;
    }
    if (!verifyBalanceUpdate(update, op.nodePubkey, op.peerNodePubkey).ok) {
      await recordIncident(ctx, {
        operatorPubkey: op.nodePubkey,
        userPubkey: deposit.user_pubkey,
        kind: 'invalid_balance_update',
        message: 'the deposit status carries a balance update that does not verify',
        evidence: { deposit: deposit.remote_deposit_id, update },
      });
      results.push({ ...base, vaultMsat: null, status: 'unsigned' });
      continue;
    }
    if (deposit.reserved_msat !== 0n || status.reserved_msat !== 0n) {
      results.push({ ...base, vaultMsat: update.balance_msat, status: 'in_flight' });
      continue;
    }
    const agrees = update.balance_msat === deposit.confirmed_msat && status.balance_msat === update.balance_msat;
    results.push({ ...base, vaultMsat: update.balance_msat, status: agrees ? 'agrees' : 'differs' });
    if (!agrees) await recordDifference(ctx, op.nodePubkey, deposit.user_pubkey, deposit.remote_deposit_id, deposit.confirmed_msat, update.balance_msat, status.balance_msat);
  }
  const differing = results.filter((r) => r.status === 'differs');
  if (differing.length > 0) ctx.logger.warn({ differences: differing.length }, 'reconciliation found balances that differ from what vaults signed');
  return results;
}

const lastEvidenceSchema = z.record(z.string(), z.unknown());

async function recordDifference(ctx: WalletContext, operatorPubkey: string, userPubkey: string, remoteDepositId: string, bridgeMsat: Msat, signedMsat: Msat, reportedMsat: Msat) {
  const evidence = { deposit: remoteDepositId, bridge_msat: bridgeMsat.toString(), signed_msat: signedMsat.toString(), reported_msat: reportedMsat.toString() };
  const last = await ctx.db
    .selectFrom('operator_incidents')
    .select('evidence')
    .where('operator_pubkey', '=', operatorPubkey)
    .where('user_pubkey', '=', userPubkey)
    .where('kind', '=', 'balance_mismatch')
    .orderBy('id', 'desc')
    .executeTakeFirst();
  // The same difference seen again is not a new incident (jsonb does not keep key order: compare by key).
  const seen = lastEvidenceSchema.safeParse(last?.evidence);
  if (seen.success && Object.entries(evidence).every(([k, v]) => seen.data[k] === v)) return;
  await recordIncident(ctx, {
    operatorPubkey,
    userPubkey,
    kind: 'balance_mismatch',
    message: `the vault reports ${reportedMsat} msat (signed: ${signedMsat} msat) where the journal holds ${bridgeMsat} msat`,
    evidence,
  });
}
