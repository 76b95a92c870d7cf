import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RawServerDefault } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { z } from 'zod';
import { ApiRefusal } from '../deposits/api-refusal.ts';
import {
  accountSummary,
  balanceHistory,
  connectionViews,
  feeTotals,
  incidentsFor,
  ownConnection,
  pendingPayments,
  storedDepositOpen,
  transactionHistory,
  type ConnectionView,
  type HistoryEntry,
} from '../deposits/account-view.ts';
import { registerConnection, type Connection } from '../deposits/connections.ts';
import { parseGrant } from '../protocol/grant.ts';
import { nostrEventSchema } from '../protocol/nostr-event.ts';
import type { HttpDependencies } from './server.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';

export interface AccountRoutesOptions {
  /** Requests each client address may make to these routes per window (default 300 a minute). */
  rateLimit?: { max: number; timeWindowMs: number };
}

const pageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z
    .string()
    .regex(/^[1-9][0-9]{0,18}$/)
    .transform((s) => BigInt(s))
    .optional(),
});
const historyQuerySchema = z.object({ days: z.coerce.number().int().min(1).max(3660).default(30) });
const pubkeyParamSchema = z.object({ pubkey: z.string().regex(/^[0-9a-f]{64}$/) });
const grantBodySchema = z.object({ grant: nostrEventSchema });

const msat = (v: bigint): string => v.toString();
const unix = (d: Date): number => Math.floor(d.getTime() / 1000);

/**
 * The account page's JSON API: every route is signed by the user with NIP-98 (per request)
 * and rate limited per client address. The user key never reaches the bridge: limits are
 * edited and connections revoked with grants the user signed in the page.
 */
export function registerAccountRoutes<L extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>, deps: HttpDependencies, options: AccountRoutesOptions = {}): void {
  void app.register(async (scope) => {
    await scope.register(rateLimit, {
      global: true,
      max: options.rateLimit?.max ?? 300,
      timeWindow: options.rateLimit?.timeWindowMs ?? 60_000,
    });
    scope.setErrorHandler((error: { statusCode?: number; message: string }, _req, reply) => {
      if (error instanceof ApiRefusal) return reply.status(error.status).send({ error: { code: error.code, message: error.message } });
      if (error.statusCode === 429) return reply.status(429).send({ error: { code: 'RATE_LIMITED', message: error.message } });
      const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      if (status === 500) deps.logger.error({ err: error }, 'account route failed');
      return reply.status(status).send({ error: { code: status === 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status === 500 ? 'internal error' : error.message } });
    });

    const signer = requestSigner(deps.publicUrl);
    const body = jsonBody;
    const query = <S extends z.ZodType>(req: FastifyRequest, schema: S, expected: string): z.output<S> => {
      const parsed = schema.safeParse(req.query);
      if (!parsed.success) throw new ApiRefusal('BAD_REQUEST', `query must be ${expected}`);
      return parsed.data;
    };
    const connectionParam = (req: FastifyRequest): string => {
      const parsed = pubkeyParamSchema.safeParse(req.params);
      if (!parsed.success) throw new ApiRefusal('BAD_REQUEST', 'the connection must be named by its public key (64 hex characters)');
      return parsed.data.pubkey;
    };

    // Totals, per-operator balances with each operator's score and its reasons, payments in flight, the lock.
    scope.get('/api/account', async (req) => {
      const user = signer(req);
      const [summary, pending] = await Promise.all([accountSummary(deps.wallet, user), pendingPayments(deps.db, user)]);
      const sum = (pick: (o: (typeof summary.operators)[number]) => bigint) => summary.operators.reduce((s, o) => s + pick(o), 0n);
      return {
        user_pubkey: user,
        known: summary.known,
        locked: summary.locked,
        lock_changed_at: summary.lockChangedAt,
        totals: {
          confirmed_msat: msat(sum((o) => o.confirmedMsat)),
          reserved_msat: msat(sum((o) => o.reservedMsat)),
          available_msat: msat(sum((o) => o.confirmedMsat - o.reservedMsat)),
          pending_out_msat: msat(sum((o) => o.pendingOutMsat)),
          open_invoices_msat: msat(sum((o) => o.openInvoicesMsat)),
        },
        operators: summary.operators.map((o) => ({
          name: o.name,
          node_pubkey: o.nodePubkey,
          score: o.score,
          score_reasons: o.scoreReasons,
          available: o.available,
          confirmed_msat: msat(o.confirmedMsat),
          reserved_msat: msat(o.reservedMsat),
          available_msat: msat(o.confirmedMsat - o.reservedMsat),
          vault_balance_msat: o.vaultBalanceMsat === null ? null : msat(o.vaultBalanceMsat),
          pending_out_msat: msat(o.pendingOutMsat),
          open_invoices_msat: msat(o.openInvoicesMsat),
          max_deposit_msat: o.maxDepositMsat === null ? null : msat(o.maxDepositMsat),
          fees: o.fees && {
            routing_base_msat: msat(o.fees.routingBaseMsat),
            routing_ppm: o.fees.routingPpm,
            maintenance_unit_msat: msat(o.fees.maintenanceUnitMsat),
            maintenance_rate_ppm: o.fees.maintenanceRatePpm,
            maintenance_period_blocks: o.fees.maintenancePeriodBlocks,
          },
        })),
        pending: pending.map(historyJson),
      };
    });

    // Every transaction of every connection of the user, with fees; totals of routing and maintenance fees.
    scope.get('/api/account/transactions', async (req) => {
      const user = signer(req);
      const page = query(req, pageQuerySchema, '?limit=1..500&before=<id>');
      const [entries, fees] = await Promise.all([transactionHistory(deps.db, user, page), feeTotals(deps.db, user)]);
      const last = entries[entries.length - 1];
      return {
        transactions: entries.map(historyJson),
        next_before: entries.length === page.limit && last ? last.tx.id.toString() : null,
        fees: {
          routing_msat: msat(fees.routingMsat),
          maintenance_msat: msat(fees.maintenanceMsat),
          maintenance: fees.maintenance.map((m) => ({ operator_pubkey: m.operatorPubkey, amount_msat: msat(m.amountMsat), at: m.at })),
        },
      };
    });

    scope.get('/api/account/balance-history', async (req) => {
      const user = signer(req);
      const { days } = query(req, historyQuerySchema, '?days=1..3660');
      const points = await balanceHistory(deps.wallet, user, deps.wallet.now() - days * 86_400);
      return { points: points.map((p) => ({ at: p.at, balance_msat: msat(p.balanceMsat) })) };
    });

    scope.get('/api/account/connections', async (req) => {
      const user = signer(req);
      const views = await connectionViews(deps.wallet, user);
      return { connections: views.map((v) => connectionJson(v, deps)) };
    });

    /** Applies a grant the user signed for one of their existing connections (new limits, or a revocation). */
    const replaceGrant = async (req: FastifyRequest, revoke: boolean) => {
      const user = signer(req);
      const pubkey = connectionParam(req);
      const { grant } = body(req, grantBodySchema, '{"grant": <grant event>}');
      const parsed = parseGrant(grant);
      if (!parsed.ok) throw new ApiRefusal('BAD_REQUEST', parsed.error.message);
      if (parsed.value.connectionPubkey !== pubkey) throw new ApiRefusal('BAD_REQUEST', 'the grant is for another connection');
      if (parsed.value.revoked !== revoke) throw new ApiRefusal('BAD_REQUEST', revoke ? 'a revocation is a grant with "revoked": true' : 'use the revoke route to revoke a connection');
      if (!(await ownConnection(deps.db, user, pubkey))) throw new ApiRefusal('NOT_FOUND', 'no such connection of yours');
      const depositOpen = await storedDepositOpen(deps.db, user);
      if (!depositOpen) throw new ApiRefusal('NOT_FOUND', 'no deposits are known for this key');
      const { connection } = await registerConnection(
        deps.db,
        deps.wallet.operators,
        deps.servedMethods,
        { authPubkey: user, grantEvent: grant, depositOpenEvent: depositOpen, servicePubkeyFor: deps.servicePubkeyFor },
        deps.logger,
      );
      deps.onRegistered(connection);
      const view = (await connectionViews(deps.wallet, user)).find((v) => v.connection.pubkey === pubkey);
      if (!view) throw new ApiRefusal('NOT_FOUND', 'no such connection of yours');
      return { connection: connectionJson(view, deps) };
    };
    // New limits for a connection: a newer grant signed in the page (the same connection key and secret).
    scope.put('/api/account/connections/:pubkey', (req) => replaceGrant(req, false));
    scope.post('/api/account/connections/:pubkey/revoke', (req) => replaceGrant(req, true));

    scope.get('/api/account/incidents', async (req) => {
      const user = signer(req);
      const { limit } = query(req, pageQuerySchema, '?limit=1..500');
      const incidents = await incidentsFor(deps.db, user, limit);
      return {
        incidents: incidents.map((i) => ({
          id: i.id.toString(),
          operator_pubkey: i.operatorPubkey,
          operator_name: deps.wallet.operators.get(i.operatorPubkey)?.name ?? null,
          kind: i.kind,
          message: i.message,
          mine: i.mine,
          evidence: i.evidence,
          created_at: unix(i.createdAt),
        })),
      };
    });
  });
}

function historyJson(entry: HistoryEntry) {
  const tx = entry.tx;
  return {
    id: tx.id.toString(),
    type: tx.type,
    /** payment (or receipt), maintenance_fee, transfer (between the user's deposits), deposit_moved (by an operator). */
    kind: entry.kind,
    state: tx.state,
    amount_msat: msat(tx.amount_msat),
    routing_fee_msat: msat(tx.fee_msat),
    fee_reserve_msat: msat(tx.fee_reserve_msat),
    payment_hash: tx.payment_hash,
    invoice: tx.invoice,
    description: tx.description,
    failure_reason: tx.failure_reason,
    hold: tx.hold,
    connection_pubkey: tx.connection_pubkey,
    connection_name: entry.connectionName,
    operator_pubkey: entry.operatorPubkey,
    parts: entry.parts.map((p) => ({ operator_pubkey: p.operatorPubkey, amount_msat: msat(p.amountMsat), routing_fee_msat: msat(p.feeMsat), state: p.state })),
    created_at: Number(tx.created_at),
    settled_at: tx.settled_at === null ? null : Number(tx.settled_at),
    expires_at: tx.expires_at === null ? null : Number(tx.expires_at),
  };
}

/** The grant's one destination as the user signed it (the connection row does not keep it), or null. */
function destinationOf(c: Connection) {
  const grant = parseGrant(c.grantEvent);
  return grant.ok ? (grant.value.destination ?? null) : null;
}

function connectionJson(view: ConnectionView, deps: HttpDependencies) {
  const c: Connection = view.connection;
  const g = c.grant;
  return {
    pubkey: c.pubkey,
    name: c.name,
    wallet_service_pubkey: c.servicePubkey ?? deps.servicePubkey,
    relays: deps.relays,
    methods: g.methods,
    revoked: g.revoked,
    created_at: unix(view.createdAt),
    grant_created_at: g.createdAt,
    expires_at: g.expiresAt,
    max_amount_msat: g.maxAmountMsat === null ? null : msat(g.maxAmountMsat),
    fee_limit: { base_msat: msat(g.feeLimit.baseMsat), ppm: g.feeLimit.ppm },
    budget: view.budget && {
      amount_msat: msat(view.budget.totalMsat),
      renewal: view.budget.renewal,
      used_msat: msat(view.budget.usedMsat),
      renews_at: view.budget.renewsAt,
    },
    velocity: g.velocity && {
      payments_per_hour: g.velocity.paymentsPerHour,
      amount_msat_per_hour: g.velocity.amountMsatPerHour === null ? null : msat(g.velocity.amountMsatPerHour),
    },
    vault_operators: g.vaultOperators,
    /** The one place this connection may pay (a sweep connection), or null for any. */
    destination: destinationOf(c),
    last_hour: { payments: view.lastHour.payments, amount_msat: msat(view.lastHour.amountMsat) },
    last_used_at: view.lastUsedAt ? unix(view.lastUsedAt) : null,
  };
}
