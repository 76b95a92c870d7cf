import { sql, type ExpressionBuilder } from 'kysely';
import type { Database, DepositRow } from '../db/schema.ts';
import type { DepositCandidate } from './allocation.ts';
import type { WalletContext } from './context.ts';
import type { Trx } from './journal.ts';

/**
 * Invoices of the deposit still open, which may yet be paid: they count against the operator's
 * room. Type and state are SQL literals, not parameters, so that a prepared statement's generic
 * plan can use the partial index of open invoices (migration 0012).
 */
export function incomingOpenMsat(eb: ExpressionBuilder<Database, 'deposits'>, nowSec: bigint) {
  return eb
    .selectFrom('transactions')
    .select(sql<bigint>`coalesce(sum(amount_msat), 0)::bigint`.as('open'))
    .whereRef('transactions.deposit_id', '=', 'deposits.id')
    .where('type', '=', sql.lit('incoming'))
    .where('state', '=', sql.lit('pending'))
    .where('expires_at', '>', nowSec);
}

/** The user's deposits with what allocation needs: score, health, balances, room. */
export async function depositCandidates(ctx: WalletContext, trx: Trx, userPubkey: string): Promise<DepositCandidate[]> {
  return (await depositCandidatesWithRows(ctx, trx, userPubkey)).map((d) => d.candidate);
}

/** As `depositCandidates`, each with its whole row: for a caller that goes on to use the chosen deposit without reading it again. */
export async function depositCandidatesWithRows(ctx: WalletContext, trx: Trx, userPubkey: string): Promise<{ candidate: DepositCandidate; row: DepositRow }[]> {
  const rows = await trx
    .selectFrom('deposits')
    .selectAll('deposits')
    .select((eb) => incomingOpenMsat(eb, BigInt(ctx.now())).as('incoming_open_msat'))
    .where('user_pubkey', '=', userPubkey)
    .orderBy('id')
    .execute();
  return rows.map(({ incoming_open_msat, ...row }) => ({ candidate: candidateFrom(ctx, { ...row, incoming_open_msat }), row }));
}

/** A deposit row as allocation sees it, with its operator's score, health and limit. */
export function candidateFrom(
  ctx: WalletContext,
  row: { id: bigint; operator_pubkey: string; confirmed_msat: bigint; reserved_msat: bigint; incoming_open_msat: bigint | null },
): DepositCandidate {
  const op = ctx.operators.get(row.operator_pubkey);
  const maxDeposit = op?.info.limits.max_deposit_msat;
  return {
    depositId: row.id,
    operatorPubkey: row.operator_pubkey,
    score: op?.score ?? 0,
    healthy: op?.available ?? false,
    confirmedMsat: row.confirmed_msat,
    availableMsat: row.confirmed_msat - row.reserved_msat,
    roomMsat: maxDeposit === undefined ? null : room(maxDeposit, row.confirmed_msat + (row.incoming_open_msat ?? 0n)),
  };
}

function room(limit: bigint, committed: bigint): bigint {
  return limit > committed ? limit - committed : 0n;
}
