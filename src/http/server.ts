import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Db } from '../db/database.ts';
import { registerConnection, RegistrationError } from '../deposits/connections.ts';
import type { WalletContext } from '../deposits/context.ts';
import { verifyHttpAuth } from '../protocol/nip98.ts';
import { nostrEventSchema, nowSeconds } from '../protocol/nostr-event.ts';

export interface HttpDependencies {
  db: Db;
  wallet: WalletContext;
  logger: Logger;
  servicePubkey: string;
  relays: readonly string[];
  servedMethods: readonly string[];
  /** The base URL clients use (NIP-98 `u` tags are checked against it); set after listen when not configured. */
  publicUrl: () => string;
  /** Whether the bridge is ready: database migrated and relay subscription live. */
  ready: () => { ready: boolean; database: boolean; relays: { url: string; live: boolean }[] };
  /** The devnet's description, in local mode. */
  devnet?: (() => unknown) | undefined;
}

const registrationSchema = z.object({ grant: nostrEventSchema, deposit_open: nostrEventSchema });

/** The bridge's HTTP API: health, public info, connection registration (NIP-98), devnet info. */
export function createHttpServer(deps: HttpDependencies) {
  const app = Fastify({ loggerInstance: deps.logger.child({ component: 'http' }), logController: new LogController({ disableRequestLogging: true }), bodyLimit: 256 * 1024 });
  // Keep bodies raw: the NIP-98 payload hash is over the exact bytes sent.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: { statusCode?: number; message: string }, _req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) deps.logger.error({ err: error }, 'http handler failed');
    void reply.status(status).send({ error: { code: status === 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status === 500 ? 'internal error' : error.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
  });

  app.get('/health', async (_req, reply) => {
    const state = deps.ready();
    return reply.status(state.ready ? 200 : 503).send({ status: state.ready ? 'ok' : 'starting', database: state.database, relays: state.relays });
  });

  app.get('/api/info', async () => ({
    wallet_service_pubkey: deps.servicePubkey,
    relays: deps.relays,
    network: deps.wallet.operators.network() ?? null,
    methods: deps.servedMethods,
    operators: deps.wallet.operators.all().map((op) => ({ name: op.name, url: op.url, node_pubkey: op.nodePubkey, score: op.score, available: op.available })),
  }));

  app.post('/api/connections', async (req, reply) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    const auth = verifyHttpAuth(req.headers.authorization, deps.publicUrl() + req.url, 'POST', raw, nowSeconds());
    if (!auth.ok) return reply.status(401).send({ error: { code: 'UNAUTHORIZED', message: auth.error.message } });
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return reply.status(400).send({ error: { code: 'BAD_REQUEST', message: 'body must be JSON' } });
    }
    const body = registrationSchema.safeParse(json);
    if (!body.success) return reply.status(400).send({ error: { code: 'BAD_REQUEST', message: 'body must be {"grant": <event>, "deposit_open": <event>}' } });
    try {
      const { connection, depositCount } = await registerConnection(
        deps.db,
        deps.wallet.operators,
        deps.servedMethods,
        { authPubkey: auth.value, grantEvent: body.data.grant, depositOpenEvent: body.data.deposit_open },
        deps.logger,
      );
      return reply.status(201).send({
        wallet_service_pubkey: deps.servicePubkey,
        relays: deps.relays,
        connection_pubkey: connection.pubkey,
        user_pubkey: connection.userPubkey,
        methods: connection.grant.methods,
        deposits: depositCount,
      });
    } catch (error) {
      if (error instanceof RegistrationError) return reply.status(error.status).send({ error: { code: error.status === 503 ? 'UNAVAILABLE' : 'BAD_REQUEST', message: error.message } });
      throw error;
    }
  });

  if (deps.devnet) {
    const describe = deps.devnet;
    app.get('/api/devnet', async () => describe());
  }
  return app;
}
