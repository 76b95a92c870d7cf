import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { TransactionRow } from '../db/schema.ts';
import type { Msat } from '../protocol/amounts.ts';
import { connectionFromRow, type Connection } from './connections.ts';
import type { WalletContext } from './context.ts';
import { budgetStatus, spendUsage, type BudgetStatus } from './spending.ts';

/**
 * Read-only views of one user's account for the account page: balances per operator, payments
 * in flight, history with fees, balance over time, connections with their limits and use,
 * incidents. Amounts are msat bigints; nothing here changes money.
 */

/** One deposit of the user, with its operator's standing. */
export interface OperatorBalance {
  nodePubkey: string;
  name: string;
  score: number;
  scoreReasons: string[];
  available: boolean;
  confirmedMsat: Msat;
  reservedMsat: Msat;
  /** The newest balance both channel peers signed, or null before the first one. */
  vaultBalanceMsat: Msat | null;
  /** Amount + fee reserve of outgoing payments in flight from this deposit. */
  pendingOutMsat: Msat;
  /** Invoices of this deposit still open (not paid, not expired). */
  openInvoicesMsat: Msat;
  /** The operator's published fees (routing, and maintenance per period), when it answered. */
  fees: { routingBaseMsat: Msat; routingPpm: number; maintenanceUnitMsat: Msat; maintenanceRatePpm: number; maintenancePeriodBlocks: number } | null;
  maxDepositMsat: Msat | null;
}

export interface AccountSummary {
  /** Whether the bridge knows this key at all (it registered a connection). */
  known: boolean;
  locked: boolean;
  /** Unix seconds of the lock statement in force, or null. */
  lockChangedAt: number | null;
  operators: OperatorBalance[];
}

/** The user's lock state and deposits, one per operator, with the operators' scores and reasons. */
export async function accountSummary(ctx: WalletContext, userPubkey: string): Promise<AccountSummary> {
  const user = await ctx.db.selectFrom('users').select(['locked', 'lock_created_at']).where('pubkey', '=', userPubkey).executeTakeFirst();
  const now = BigInt(ctx.now());
  const rows = await ctx.db
    .selectFrom('deposits')
    .select((eb) => [
      'id',
      'operator_pubkey',
      'confirmed_msat',
      'reserved_msat',
      'vault_balance_msat',
      // A payment split across deposits holds its parts at each; a single one, its whole at its deposit.
      eb
        .selectFrom('transactions')
        .select(sql<bigint>`coalesce(sum(amount_msat + fee_reserve_msat), 0)::bigint`.as('v'))
        .whereRef('transactions.deposit_id', '=', 'deposits.id')
        .where('type', '=', 'outgoing')
        .where('state', '=', 'pending')
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('payment_parts').select('payment_parts.id').whereRef('payment_parts.transaction_id', '=', 'transactions.id'))))
        .as('pending_single_msat'),
      eb
        .selectFrom('payment_parts')
        .innerJoin('transactions', 'transactions.id', 'payment_parts.transaction_id')
        .select(sql<bigint>`coalesce(sum(payment_parts.amount_msat + payment_parts.fee_reserve_msat), 0)::bigint`.as('v'))
        .whereRef('payment_parts.deposit_id', '=', 'deposits.id')
        .where('payment_parts.state', '=', 'pending')
        .where('transactions.state', '=', 'pending')
        .as('pending_parts_msat'),
      eb
        .selectFrom('transactions')
        .select(sql<bigint>`coalesce(sum(amount_msat), 0)::bigint`.as('v'))
        .whereRef('transactions.deposit_id', '=', 'deposits.id')
        .where('type', '=', 'incoming')
        .where('state', '=', 'pending')
        .where('expires_at', '>', now)
        .as('open_invoices_msat'),
    ])
    .where('user_pubkey', '=', userPubkey)
    .orderBy('id')
    .execute();
  const operators = rows.map((row): OperatorBalance => {
    const op = ctx.operators.get(row.operator_pubkey);
    return {
      nodePubkey: row.operator_pubkey,
      name: op?.name ?? row.operator_pubkey.slice(0, 12),
      score: op?.score ?? 0,
      scoreReasons: op?.scoreReasons ?? ['operator not connected to this bridge'],
      available: op?.available ?? false,
      confirmedMsat: row.confirmed_msat,
      reservedMsat: row.reserved_msat,
      vaultBalanceMsat: row.vault_balance_msat,
      pendingOutMsat: (row.pending_single_msat ?? 0n) + (row.pending_parts_msat ?? 0n),
      openInvoicesMsat: row.open_invoices_msat ?? 0n,
      fees: op
        ? {
            routingBaseMsat: op.info.fees.routing_base_msat,
            routingPpm: op.info.fees.routing_ppm,
            maintenanceUnitMsat: op.info.fees.maintenance.unit_fee_msat,
            maintenanceRatePpm: op.info.fees.maintenance.rate_fee_ppm,
            maintenancePeriodBlocks: op.info.fees.maintenance.period_blocks,
          }
        : null,
      maxDepositMsat: op?.info.limits.max_deposit_msat ?? null,
    };
  });
  return {
    known: user !== undefined,
    locked: user?.locked ?? false,
    lockChangedAt: user?.lock_created_at == null ? null : Number(user.lock_created_at),
    operators,
  };
}

/** What a transaction is, for the person reading the history. */
export type TransactionKind = 'payment' | 'maintenance_fee' | 'transfer' | 'deposit_moved';

/** One deposit's share of a payment split across deposits (docs/multi-vault.md). */
export interface PartView {
  operatorPubkey: string;
  amountMsat: Msat;
  feeMsat: Msat;
  state: string;
}

/** A transaction with what the page shows beside it: the connection's name, the operator, the parts. */
export interface HistoryEntry {
  tx: TransactionRow;
  kind: TransactionKind;
  connectionName: string | null;
  operatorPubkey: string;
  /** Empty unless the payment was split across deposits. */
  parts: PartView[];
}

/**
 * The user's payments in flight: outgoing payments not final, and held incoming payments
 * (hold invoices accepted, waiting for settle or cancel). Newest first.
 */
export async function pendingPayments(db: Db, userPubkey: string): Promise<HistoryEntry[]> {
  const rows = await historyQuery(db, userPubkey)
    .where((eb) => eb.or([eb.and([eb('transactions.type', '=', 'outgoing'), eb('transactions.state', '=', 'pending')]), eb('transactions.state', '=', 'accepted')]))
    .limit(200)
    .execute();
  return withParts(db, rows);
}

/**
 * The user's transactions of every connection and state, newest first, `limit` of them with an
 * id below `before`. Routing fees are each payment's `fee_msat`.
 */
export async function transactionHistory(db: Db, userPubkey: string, options: { limit: number; before?: bigint | undefined }): Promise<HistoryEntry[]> {
  let q = historyQuery(db, userPubkey);
  if (options.before !== undefined) q = q.where('transactions.id', '<', options.before);
  return withParts(db, await q.limit(options.limit).execute());
}

function historyQuery(db: Db, userPubkey: string) {
  return db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .leftJoin('connections', 'connections.pubkey', 'transactions.connection_pubkey')
    .selectAll('transactions')
    .select(['deposits.operator_pubkey as operator_pubkey', 'connections.name as connection_name'])
    .where('transactions.user_pubkey', '=', userPubkey)
    .orderBy('transactions.id', 'desc');
}

/** The kind of a transaction, from the marks its writer leaves in its metadata. */
export function transactionKind(tx: Pick<TransactionRow, 'type' | 'metadata'>): TransactionKind {
  const meta = tx.metadata;
  if (meta === null) return 'payment';
  if (tx.type === 'outgoing' && meta.kind === MAINTENANCE_FEE_KIND) return 'maintenance_fee';
  if (typeof meta.transfer === 'object' && meta.transfer !== null) return 'transfer';
  if (typeof meta.deposit_moved === 'object' && meta.deposit_moved !== null) return 'deposit_moved';
  return 'payment';
}

async function withParts(db: Db, rows: (TransactionRow & { operator_pubkey: string; connection_name: string | null })[]): Promise<HistoryEntry[]> {
  const outgoing = rows.filter((r) => r.type === 'outgoing').map((r) => r.id);
  const parts =
    outgoing.length === 0
      ? []
      : await db
          .selectFrom('payment_parts')
          .innerJoin('deposits', 'deposits.id', 'payment_parts.deposit_id')
          .select(['payment_parts.transaction_id', 'deposits.operator_pubkey', 'payment_parts.amount_msat', 'payment_parts.fee_msat', 'payment_parts.state'])
          .where('payment_parts.transaction_id', 'in', outgoing)
          .orderBy('payment_parts.id')
          .execute();
  return rows.map((row) => {
    const { operator_pubkey, connection_name, ...tx } = row;
    return {
      tx,
      kind: transactionKind(tx),
      connectionName: connection_name,
      operatorPubkey: operator_pubkey,
      parts: parts
        .filter((p) => p.transaction_id === tx.id)
        .map((p) => ({ operatorPubkey: p.operator_pubkey, amountMsat: p.amount_msat, feeMsat: p.fee_msat, state: p.state })),
    };
  });
}

/**
 * What marks an operator's maintenance fee among the user's transactions: a settled outgoing
 * transaction of no connection whose metadata `kind` is this (src/deposits/maintenance.ts).
 */
export const MAINTENANCE_FEE_KIND = 'maintenance_fee';

/** A maintenance fee an operator took from one of the user's deposits. */
export interface MaintenanceCharge {
  operatorPubkey: string;
  amountMsat: Msat;
  /** Unix seconds. */
  at: number;
}

export interface FeeTotals {
  /** Routing fees of settled payments. */
  routingMsat: Msat;
  /** Maintenance fees the operators took, all time. */
  maintenanceMsat: Msat;
  /** The newest 500 maintenance charges. */
  maintenance: MaintenanceCharge[];
}

/** What the user has paid in fees, all time: routing per payment, maintenance per deposit. */
export async function feeTotals(db: Db, userPubkey: string): Promise<FeeTotals> {
  const maintenanceKind = sql<boolean>`transactions.metadata->>'kind' = ${MAINTENANCE_FEE_KIND}`;
  const totals = await db
    .selectFrom('transactions')
    .select([
      sql<bigint>`coalesce(sum(fee_msat), 0)::bigint`.as('routing'),
      sql<bigint>`coalesce(sum(amount_msat) filter (where ${maintenanceKind}), 0)::bigint`.as('maintenance'),
    ])
    .where('user_pubkey', '=', userPubkey)
    .where('type', '=', 'outgoing')
    .where('state', '=', 'settled')
    .executeTakeFirstOrThrow();
  const charges = await db
    .selectFrom('transactions')
    .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
    .select(['deposits.operator_pubkey', 'transactions.amount_msat', 'transactions.created_at'])
    .where('transactions.user_pubkey', '=', userPubkey)
    .where('transactions.type', '=', 'outgoing')
    .where('transactions.state', '=', 'settled')
    .where(maintenanceKind)
    .orderBy('transactions.id', 'desc')
    .limit(500)
    .execute();
  return {
    routingMsat: totals.routing,
    maintenanceMsat: totals.maintenance,
    maintenance: charges.map((c) => ({ operatorPubkey: c.operator_pubkey, amountMsat: c.amount_msat, at: Number(c.created_at) })),
  };
}

/** One point of the balance chart: the settled balance across deposits just after `at`. */
export interface BalancePoint {
  at: number;
  balanceMsat: Msat;
}

/**
 * The user's settled balance (sum over deposits of the journal's confirmed changes) over time,
 * from `sinceSec` (or a minute before the first change, for a younger account) to now: the
 * balance at the start, then after each change (past `maxPoints` changes, only the last balance
 * of each time bucket), then the balance now. Unix seconds. A move between the user's own
 * deposits counts as its fee alone.
 */
export async function balanceHistory(ctx: WalletContext, userPubkey: string, sinceSec: number, maxPoints = 400): Promise<BalancePoint[]> {
  const since = new Date(sinceSec * 1000);
  const start = await ctx.db
    .selectFrom('journal_entries')
    .innerJoin('deposits', 'deposits.id', 'journal_entries.deposit_id')
    .select(sql<bigint>`coalesce(sum(journal_entries.confirmed_delta_msat), 0)::bigint`.as('v'))
    .where('deposits.user_pubkey', '=', userPubkey)
    .where('journal_entries.created_at', '<', since)
    .executeTakeFirstOrThrow();
  const rows = await ctx.db
    .selectFrom('journal_entries')
    .innerJoin('deposits', 'deposits.id', 'journal_entries.deposit_id')
    .leftJoin('transactions', 'transactions.id', 'journal_entries.transaction_id')
    .select([
      'journal_entries.confirmed_delta_msat as delta',
      'journal_entries.created_at as at',
      'transactions.type as type',
      'transactions.amount_msat as amount',
      sql<boolean>`coalesce(transactions.metadata ? 'transfer', false)`.as('transfer'),
    ])
    .where('deposits.user_pubkey', '=', userPubkey)
    .where('journal_entries.created_at', '>=', since)
    .where('journal_entries.confirmed_delta_msat', '!=', 0n)
    .orderBy('journal_entries.created_at')
    .orderBy('journal_entries.id')
    .execute();
  // A move between the user's own deposits changes their total only by its fee: its credit is
  // left out and its debit counted as the fee alone, so the chart shows no money twice while
  // the move is under way.
  const changes = rows
    .filter((r) => !(r.transfer && r.type === 'incoming'))
    .map((r) => ({ at: r.at, delta: r.transfer && r.type === 'outgoing' && r.amount !== null ? r.delta + r.amount : r.delta }))
    .filter((c) => c.delta !== 0n);
  const now = ctx.now();
  // An account younger than the range starts its chart just before its first change.
  const firstAt = changes[0] ? Math.floor(changes[0].at.getTime() / 1000) : undefined;
  const from = start.v === 0n && firstAt !== undefined ? Math.max(sinceSec, firstAt - 60) : sinceSec;
  // Every change is a point while they are few; past `maxPoints`, one point per time bucket.
  const bucket = changes.length <= maxPoints ? 0 : Math.max(1, Math.ceil((now - from) / maxPoints));
  const points: BalancePoint[] = [{ at: from, balanceMsat: start.v }];
  let balance = start.v;
  for (const change of changes) {
    balance += change.delta;
    const at = Math.floor(change.at.getTime() / 1000);
    const last = points[points.length - 1];
    // Within one bucket only the last balance is kept, so a busy account still draws quickly.
    if (bucket > 0 && last && points.length > 1 && Math.floor(last.at / bucket) === Math.floor(at / bucket)) {
      last.at = at;
      last.balanceMsat = balance;
    } else {
      points.push({ at, balanceMsat: balance });
    }
  }
  points.push({ at: Math.max(now, points[points.length - 1]?.at ?? now), balanceMsat: balance });
  return points;
}

/** A connection with its limits and what it has used of them. */
export interface ConnectionView {
  connection: Connection;
  createdAt: Date;
  budget: BudgetStatus | null;
  lastHour: { payments: number; amountMsat: Msat };
  /** When the connection last sent a request, or null. */
  lastUsedAt: Date | null;
}

/** The user's connections, newest first, with budget use and last activity. */
export async function connectionViews(ctx: WalletContext, userPubkey: string): Promise<ConnectionView[]> {
  const rows = await ctx.db
    .selectFrom('connections')
    .selectAll('connections')
    // Requests that act leave a row each; read-only ones only the connection's `last_used_at`.
    .select(
      sql<Date | null>`greatest(connections.last_used_at, (select max(received_at) from nwc_requests where nwc_requests.connection_pubkey = connections.pubkey))`.as('last_activity_at'),
    )
    .where('user_pubkey', '=', userPubkey)
    .orderBy('created_at', 'desc')
    .execute();
  const now = ctx.now();
  return Promise.all(
    rows.map(async (row) => {
      const { last_activity_at, ...connectionRow } = row;
      const connection = connectionFromRow(connectionRow);
      const usage = await spendUsage(ctx.db, connection, now);
      return {
        connection,
        createdAt: row.created_at,
        budget: await budgetStatus(ctx.db, connection, now),
        lastHour: usage.lastHour,
        lastUsedAt: last_activity_at ? new Date(last_activity_at) : null,
      };
    }),
  );
}

/** One of the user's connections, or undefined when the key is unknown or another user's. */
export async function ownConnection(db: Db, userPubkey: string, connectionPubkey: string): Promise<Connection | undefined> {
  const row = await db.selectFrom('connections').selectAll().where('pubkey', '=', connectionPubkey).where('user_pubkey', '=', userPubkey).executeTakeFirst();
  return row ? connectionFromRow(row) : undefined;
}

/** The deposit-open statement the user signed when first registering, kept by the bridge. */
export async function storedDepositOpen(db: Db, userPubkey: string) {
  const row = await db.selectFrom('users').select('deposit_open_event').where('pubkey', '=', userPubkey).executeTakeFirst();
  return row?.deposit_open_event;
}

export interface IncidentView {
  id: bigint;
  operatorPubkey: string;
  kind: string;
  message: string;
  /** Evidence is shown only for the user's own incidents; others' may name other users. */
  evidence: unknown;
  mine: boolean;
  createdAt: Date;
}

/**
 * Integrity incidents that concern the user: those recorded against the user's own deposits,
 * and those with no user at an operator holding a deposit of theirs. Newest first.
 */
export async function incidentsFor(db: Db, userPubkey: string, limit: number): Promise<IncidentView[]> {
  const rows = await db
    .selectFrom('operator_incidents')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb('user_pubkey', '=', userPubkey),
        eb.and([
          eb('user_pubkey', 'is', null),
          eb('operator_pubkey', 'in', eb.selectFrom('deposits').select('operator_pubkey').where('user_pubkey', '=', userPubkey)),
        ]),
      ]),
    )
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    operatorPubkey: r.operator_pubkey,
    kind: r.kind,
    message: r.message,
    evidence: r.user_pubkey === userPubkey ? r.evidence : null,
    mine: r.user_pubkey === userPubkey,
    createdAt: r.created_at,
  }));
}
