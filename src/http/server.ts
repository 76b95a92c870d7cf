import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Db } from '../db/database.ts';
import { ApiRefusal } from '../deposits/api-refusal.ts';
import { listAudit } from '../deposits/audit.ts';
import { registerConnection, type Connection } from '../deposits/connections.ts';
import type { WalletContext } from '../deposits/context.ts';
import { applyUserLock } from '../deposits/locks.ts';
import { nostrEventSchema } from '../protocol/nostr-event.ts';
import type { BridgeMetrics } from '../metrics/metrics.ts';
import { metricsRoute } from './metrics-route.ts';
import { requestLog } from './request-log.ts';
import { settingsRoute } from './settings-route.ts';
import { restoreRoute } from './restore-route.ts';
import { sweepRoute } from './sweep-route.ts';
import { randomUUID } from 'node:crypto';
import type { LnurlService } from '../lnurl/pay.ts';
import { registerLnurlRoutes } from './lnurl-routes.ts';
import { registerAccountRoutes } from './account-routes.ts';
import { registerAllocationRoutes } from './allocation-routes.ts';
import { registerStaticRoutes } from './static-routes.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';
import type { TrustProxy } from '../config.ts';

export interface HttpDependencies {
  db: Db;
  wallet: WalletContext;
  logger: Logger;
  servicePubkey: string;
  relays: readonly string[];
  servedMethods: readonly string[];
  /** The wallet service key a new connection gets. */
  servicePubkeyFor: (connectionPubkey: string) => string;
  /** Called with each connection registered (or updated) here. */
  onRegistered: (connection: Connection) => void;
  /** The base URL clients use (NIP-98 `u` tags are checked against it); set after listen when not configured. */
  publicUrl: () => string;
  /** Whether the bridge is ready: database migrated and relay subscription live. */
  ready: () => { ready: boolean; database: boolean; relays: { url: string; live: boolean }[] };
  /** The devnet's description, in local mode. */
  devnet?: (() => unknown) | undefined;
  /** The vaults file's v1 operators, listed for the owner's own tools; the bridge never calls them. */
  v1Operators?: (() => readonly { name: string; url: string; nodePubkey?: string }[]) | undefined;
  /** Served at GET /metrics. */
  metrics?: BridgeMetrics | undefined;
  /** Which proxies' X-Forwarded-For to believe for client addresses (TRUST_PROXY). */
  trustProxy?: TrustProxy | undefined;
  /** Lightning addresses and LNURL-pay (src/http/lnurl-routes.ts). */
  lnurl?: LnurlService | undefined;
}

const registrationSchema = z.object({ grant: nostrEventSchema, deposit_open: nostrEventSchema });
const lockSchema = z.object({ lock: nostrEventSchema });
const auditQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z
    .string()
    .regex(/^[1-9][0-9]{0,18}$/)
    .transform((s) => BigInt(s))
    .optional(),
});

/** The bridge's HTTP API: health, public info, and the user's own calls, each signed with NIP-98. */
/** Fastify's `trustProxy` for TRUST_PROXY: a hop count trusts that many proxies in front, nearest first. */
function trustProxyOption(trust: TrustProxy | undefined): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (trust === undefined) return false;
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return trust;
}

export function createHttpServer(deps: HttpDependencies) {
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit: 256 * 1024,
    genReqId: () => randomUUID(),
    // Behind a proxy every client would otherwise share the proxy's address, and its rate limit.
    trustProxy: trustProxyOption(deps.trustProxy),
  });
  void app.register(requestLog);
  // Keep bodies raw: the NIP-98 payload hash is over the exact bytes sent.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: { statusCode?: number; message: string }, _req, reply) => {
    if (error instanceof ApiRefusal) return reply.status(error.status).send({ error: { code: error.code, message: error.message } });
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) deps.logger.error({ err: error }, 'http handler failed');
    return reply.status(status).send({ error: { code: status === 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status === 500 ? 'internal error' : error.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
  });

  const signer = requestSigner(deps.publicUrl);
  const body = jsonBody;

  app.get('/health', async (_req, reply) => {
    const state = deps.ready();
    return reply.status(state.ready ? 200 : 503).send({ status: state.ready ? 'ok' : 'starting', database: state.database, relays: state.relays });
  });

  app.get('/api/info', async () => ({
    wallet_service_pubkey: deps.servicePubkey,
    relays: deps.relays,
    network: deps.wallet.operators.network() ?? null,
    methods: deps.servedMethods,
    operators: deps.wallet.operators.all().map((op) => ({ name: op.name, url: op.url, node_pubkey: op.nodePubkey, score: op.score, score_reasons: op.scoreReasons, available: op.available })),
    // Not used by the bridge (it holds no v1 deposit key): for `holdings` and the owner's own tools.
    v1_operators: (deps.v1Operators?.() ?? []).map((op) => ({ name: op.name, url: op.url, node_pubkey: op.nodePubkey ?? null })),
  }));

  app.post('/api/connections', async (req, reply) => {
    const user = signer(req);
    const registration = body(req, registrationSchema, '{"grant": <event>, "deposit_open": <event>}');
    const { connection, depositCount } = await registerConnection(
      deps.db,
      deps.wallet.operators,
      deps.servedMethods,
      { authPubkey: user, grantEvent: registration.grant, depositOpenEvent: registration.deposit_open, servicePubkeyFor: deps.servicePubkeyFor },
      deps.logger,
    );
    deps.onRegistered(connection);
    return reply.status(connection.grant.revoked ? 200 : 201).send({
      revoked: connection.grant.revoked,
      wallet_service_pubkey: connection.servicePubkey ?? deps.servicePubkey,
      relays: deps.relays,
      connection_pubkey: connection.pubkey,
      user_pubkey: connection.userPubkey,
      methods: connection.grant.methods,
      deposits: depositCount,
    });
  });

  // The emergency lock and unlock: the user's signed statement, applied here and forwarded to every vault.
  app.post('/api/lock', async (req) => {
    const user = signer(req);
    const { lock } = body(req, lockSchema, '{"lock": <deposit-lock event>}');
    const outcome = await applyUserLock(deps.wallet, user, lock);
    return { locked: outcome.locked, operators: outcome.operators.map((o) => ({ name: o.name, node_pubkey: o.nodePubkey, ok: o.ok, ...(o.error ? { error: o.error } : {}) })) };
  });

  app.get('/api/audit', async (req) => {
    const user = signer(req);
    const query = auditQuerySchema.safeParse(req.query);
    if (!query.success) throw new ApiRefusal('BAD_REQUEST', 'query must be ?limit=1..500&before=<id>');
    const entries = await listAudit(deps.db, user, query.data);
    return {
      entries: entries.map((e) => ({
        id: e.id.toString(),
        created_at: Math.floor(e.created_at.getTime() / 1000),
        connection_pubkey: e.connection_pubkey,
        request_event_id: e.request_event_id,
        method: e.method,
        code: e.code,
        message: e.message,
      })),
    };
  });

  registerAccountRoutes(app, deps);
  registerAllocationRoutes(app, deps);
  registerStaticRoutes(app, { relays: deps.relays });

  if (deps.lnurl) registerLnurlRoutes(app, { db: deps.db, lnurl: deps.lnurl, publicUrl: deps.publicUrl });

  if (deps.metrics) void app.register(metricsRoute(deps.metrics));
  void app.register(settingsRoute({ db: deps.db, publicUrl: deps.publicUrl }));
  void app.register(restoreRoute({ wallet: deps.wallet, publicUrl: deps.publicUrl }));
  void app.register(sweepRoute(deps));

  if (deps.devnet) {
    const describe = deps.devnet;
    app.get('/api/devnet', async () => describe());
  }
  return app;
}
