/**
 * The rebalancer (docs/multi-vault.md): a background job moving money between one user's own
 * deposits towards the targets `allocate` sets, and out of operators whose score collapsed.
 * It acts only for users with a connection whose grant lists `rebalance` and names the vault
 * operators money may move between (the vaults refuse anything else), one transfer per user
 * at a time, each fee-bounded and journaled (`src/deposits/transfers.ts`).
 */
import { sql } from 'kysely';
import { feeLimitFor, type Msat } from '../protocol/amounts.ts';
import { grantInForce } from '../protocol/grant.ts';
import { REBALANCE_CAPABILITY } from '../protocol/transfer.ts';
import { allocate, DEFAULT_POLICY, type AllocationPolicy, type DepositCandidate } from './allocation.ts';
import { connectionFromRow, type Connection } from './connections.ts';
import type { WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { userPolicy } from './policy.ts';
import { syncPendingTransfers, transferBetween, type TransferKind, type TransferResult } from './transfers.ts';

export interface RebalanceOptions {
  /** Move only when the money away from its targets is more than this share of the user's total, in ppm (default 10 %). */
  driftPpm: number;
  /** …and more than this many times the expected routing fee of the move (default 10). */
  feeMultiple: bigint;
  /** The spreading rules; absent: each user's own (GET/PUT /api/policy), DEFAULT_POLICY for those who set none. */
  policy?: AllocationPolicy;
}

export const DEFAULT_REBALANCE_OPTIONS: RebalanceOptions = { driftPpm: 100_000, feeMultiple: 10n };

/** A move the rebalancer decided on, and how it went. */
export interface RebalanceMove {
  userPubkey: string;
  kind: Extract<TransferKind, 'rebalance' | 'drain'>;
  fromDepositId: bigint;
  toDepositId: bigint;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  result: TransferResult;
}

/** The move planned for one user's deposits (without doing it), or null when none is due. */
export interface PlannedMove {
  kind: 'rebalance' | 'drain';
  from: DepositCandidate;
  to: DepositCandidate;
  amountMsat: Msat;
  maxFeeMsat: Msat;
}

/** What the source operator charges to route `amount` (its published routing fee), as the drift threshold's yardstick. */
export type RoutingFeeOf = (operatorPubkey: string, amountMsat: Msat) => Msat;

/**
 * The largest amount a deposit with `available` can send with its fee limit (max(base, ppm))
 * reserved beside it: amount + max(base, amount × ppm / 10^6) ≤ available.
 */
function sendable(available: Msat, grantFee: { baseMsat: Msat; ppm: number }): Msat {
  const byBase = available - grantFee.baseMsat;
  const byRate = (available * 1_000_000n) / (1_000_000n + BigInt(grantFee.ppm));
  const amount = byBase < byRate ? byBase : byRate;
  return amount > 0n ? amount : 0n;
}

/**
 * Decides one move for a user: first draining an operator whose score fell below the policy's
 * floor (everything it holds that can be sent, to the healthy operator furthest below its
 * target); otherwise, when the money away from its targets passes `driftPpm` of the total and
 * is worth `feeMultiple` times the move's expected fee, from the deposit furthest above its
 * target to the one furthest below, by the smaller of the two gaps.
 */
export function planMove(
  candidates: readonly DepositCandidate[],
  grant: Pick<Connection['grant'], 'feeLimit'>,
  routingFee: RoutingFeeOf,
  minAmountMsat: Msat,
  options: RebalanceOptions & { policy: AllocationPolicy } = { ...DEFAULT_REBALANCE_OPTIONS, policy: DEFAULT_POLICY },
): PlannedMove | null {
  const total = candidates.reduce((sum, c) => sum + c.confirmedMsat, 0n);
  if (total <= 0n) return null;
  const { targets } = allocate(candidates, total, options.policy);
  const gap = (c: DepositCandidate) => (targets.get(c.depositId) ?? 0n) - c.confirmedMsat;
  const receivers = candidates.filter((c) => c.healthy && c.score >= options.policy.minScore && (c.roomMsat === null || c.roomMsat > 0n)).sort((a, b) => (gap(a) === gap(b) ? 0 : gap(a) > gap(b) ? -1 : 1));

  const collapsed = candidates
    .filter((c) => c.healthy && c.score < options.policy.minScore && c.availableMsat > 0n)
    .sort((a, b) => (a.availableMsat === b.availableMsat ? 0 : a.availableMsat > b.availableMsat ? -1 : 1));
  for (const from of collapsed) {
    const to = receivers.find((r) => r.depositId !== from.depositId);
    if (!to) break;
    let amount = sendable(from.availableMsat, grant.feeLimit);
    if (to.roomMsat !== null && amount > to.roomMsat) amount = to.roomMsat;
    if (amount < minAmountMsat) continue;
    return { kind: 'drain', from, to, amountMsat: amount, maxFeeMsat: feeLimitFor(amount, grant.feeLimit) };
  }

  const drift = candidates.reduce((sum, c) => sum + (gap(c) > 0n ? gap(c) : 0n), 0n);
  if (drift * 1_000_000n <= total * BigInt(options.driftPpm)) return null;
  const from = candidates.filter((c) => c.healthy && gap(c) < 0n).sort((a, b) => (gap(a) === gap(b) ? 0 : gap(a) < gap(b) ? -1 : 1))[0];
  const to = receivers.find((r) => gap(r) > 0n && r.depositId !== from?.depositId);
  if (!from || !to) return null;
  let amount = -gap(from) < gap(to) ? -gap(from) : gap(to);
  const limit = sendable(from.availableMsat, grant.feeLimit);
  if (amount > limit) amount = limit;
  if (to.roomMsat !== null && amount > to.roomMsat) amount = to.roomMsat;
  if (amount < minAmountMsat) return null;
  if (drift <= options.feeMultiple * routingFee(from.operatorPubkey, amount)) return null;
  return { kind: 'rebalance', from, to, amountMsat: amount, maxFeeMsat: feeLimitFor(amount, grant.feeLimit) };
}

/** The newest connection of the user allowed to rebalance: `rebalance` granted, operators named, grant in force. */
async function rebalancingConnection(ctx: WalletContext, userPubkey: string): Promise<Connection | null> {
  const rows = await ctx.db.selectFrom('connections').selectAll().where('user_pubkey', '=', userPubkey).where('revoked', '=', false).orderBy('grant_created_at', 'desc').execute();
  for (const row of rows) {
    const connection = connectionFromRow(row);
    const grant = connection.grant;
    if (grant.methods.includes(REBALANCE_CAPABILITY) && grant.vaultOperators !== null && grantInForce(grant, ctx.now()).ok) return connection;
  }
  return null;
}

/** Plans and makes at most one move for the user (see `planMove`); null when none is due or allowed. */
export async function rebalanceUser(ctx: WalletContext, userPubkey: string, options: RebalanceOptions = DEFAULT_REBALANCE_OPTIONS): Promise<RebalanceMove | null> {
  const connection = await rebalancingConnection(ctx, userPubkey);
  if (!connection) return null;
  const allowed = connection.grant.vaultOperators ?? [];
  const candidates = (await depositCandidates(ctx, ctx.db, userPubkey)).filter((c) => allowed.includes(c.operatorPubkey));
  const routingFee: RoutingFeeOf = (operatorPubkey, amount) => {
    const fees = ctx.operators.get(operatorPubkey)?.info.fees;
    return fees ? fees.routing_base_msat + (amount * BigInt(fees.routing_ppm)) / 1_000_000n : 0n;
  };
  const minInvoice = candidates.reduce<Msat>((max, c) => {
    const min = ctx.operators.get(c.operatorPubkey)?.info.limits.min_invoice_msat ?? 1n;
    return min > max ? min : max;
  }, 1n);
  const policy = options.policy ?? (await userPolicy(ctx.db, userPubkey));
  const plan = planMove(candidates, connection.grant, routingFee, minInvoice, { ...options, policy });
  if (!plan) return null;
  const result = await transferBetween(ctx, {
    userPubkey,
    fromDepositId: plan.from.depositId,
    toDepositId: plan.to.depositId,
    amountMsat: plan.amountMsat,
    maxFeeMsat: plan.maxFeeMsat,
    kind: plan.kind,
    grantEvent: connection.grantEvent,
    wait: true,
  });
  ctx.logger.info({ user: userPubkey, kind: plan.kind, amount_msat: plan.amountMsat.toString(), state: result.state }, 'rebalancing move');
  return { userPubkey, kind: plan.kind, fromDepositId: plan.from.depositId, toDepositId: plan.to.depositId, amountMsat: plan.amountMsat, maxFeeMsat: plan.maxFeeMsat, result };
}

/**
 * One pass of the background job: pending transfers brought up to date, then at most one move
 * per user who allows rebalancing. Idempotent: a move in flight blocks the next for its user
 * (one pending transfer per user), and each pass plans from the journal as it stands.
 */
export async function rebalanceOnce(ctx: WalletContext, options: RebalanceOptions = DEFAULT_REBALANCE_OPTIONS): Promise<RebalanceMove[]> {
  await syncPendingTransfers(ctx);
  const users = await ctx.db
    .selectFrom('connections')
    .select('user_pubkey')
    .distinct()
    .where('revoked', '=', false)
    .where(sql<boolean>`methods @> ${JSON.stringify([REBALANCE_CAPABILITY])}::jsonb`)
    .execute();
  const moves: RebalanceMove[] = [];
  for (const { user_pubkey } of users) {
    if (ctx.stopping.aborted) break;
    try {
      const move = await rebalanceUser(ctx, user_pubkey, options);
      if (move) moves.push(move);
    } catch (error) {
      ctx.logger.warn({ user: user_pubkey, err: error }, 'rebalancing a user failed; will try again');
    }
  }
  return moves;
}
