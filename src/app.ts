import type { Logger } from 'pino';
import type { Db } from './db/database.ts';
import { FinalityNotifier, type WalletContext } from './deposits/context.ts';
import { OperatorDirectory, type AuditorSource, type OperatorEntry } from './deposits/operators.ts';
import { refreshPendingOutgoing } from './deposits/payments.ts';
import { reconcile } from './deposits/reconcile.ts';
import { VaultEventFollower } from './deposits/vault-events.ts';
import { createHttpServer } from './http/server.ts';
import { nowSeconds } from './protocol/nostr-event.ts';
import { InfoEventPublisher } from './nwc/info-event.ts';
import { NotificationSender } from './nwc/notifications.ts';
import type { RateLimit } from './nwc/rate-limiter.ts';
import { deriveBridgeKeys, type BridgeKeys } from './nwc/keys.ts';
import { SERVED_METHODS } from './nwc/methods/registry.ts';
import { GRANTABLE_CAPABILITIES } from './deposits/connections.ts';
import { RelayPool } from './nwc/relay-pool.ts';
import { NwcResponder } from './nwc/responder.ts';
import { AuditorClient } from './vault-client/auditor-client.ts';
import { HttpVaultClient } from './vault-client/http-vault-client.ts';

export interface BridgeOptions {
  /** An open, migrated database; the bridge closes it on stop. */
  db: Db;
  masterKey: Uint8Array;
  relays: readonly string[];
  operators: readonly OperatorEntry[];
  auditors: readonly { url: string; pubkey: string }[];
  httpHost: string;
  httpPort: number;
  /** The base URL clients reach the HTTP API at; defaults to the listening address. */
  publicUrl?: string | undefined;
  alias: string;
  logger: Logger;
  /** In local mode: what GET /api/devnet answers. */
  devnet?: (() => unknown) | undefined;
  /** Timeout of each Vault API call (default 10 s). */
  vaultTimeoutMs?: number;
  /** How long stop() waits for requests in flight to be answered (default 10 s). */
  drainTimeoutMs?: number;
  /** NIP-47 requests older than this when first seen are not executed (default 300 s). */
  requestMaxAgeSeconds?: number;
  /** How long a claim on a request holds without renewal (default 30 s). */
  requestLeaseSeconds?: number;
  /** How often balances are compared with what the vaults signed (default 300 s). */
  reconcileIntervalSeconds?: number;
  /** Requests per second and burst each connection may send (default 10/s, burst 60). */
  rateLimit?: RateLimit;
}

export interface RunningBridge {
  url: string;
  keys: BridgeKeys;
  wallet: WalletContext;
  stop(): Promise<void>;
}

/** The deposit services on a database, with a directory of operators called with the bridge's vault key. */
export function createWallet(db: Db, keys: BridgeKeys, logger: Logger, vaultTimeoutMs?: number, stopping: AbortSignal = new AbortController().signal): WalletContext {
  const operators = new OperatorDirectory(
    db,
    (url) => new HttpVaultClient({ url, secretKey: keys.vaultAuthSecret, logger, ...(vaultTimeoutMs ? { timeoutMs: vaultTimeoutMs } : {}) }),
    logger.child({ component: 'operators' }),
  );
  return { db, operators, logger: logger.child({ component: 'deposits' }), finality: new FinalityNotifier(), stopping, now: nowSeconds };
}

const SCORE_REFRESH_MS = 60_000;
const PENDING_REFRESH_MS = 30_000;
const PROBE_UNAVAILABLE_MS = 5_000;

/**
 * Starts the bridge in order: operators, their event streams, payments a previous run left in
 * flight, the HTTP API, the NIP-47 responder and its info event. `stop()` undoes it in reverse:
 * stop intake, drain requests in flight, close subscriptions, close the database.
 */
export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const { db, logger } = options;
  const keys = deriveBridgeKeys(options.masterKey);
  const stopping = new AbortController();
  const wallet = createWallet(db, keys, logger, options.vaultTimeoutMs, stopping.signal);
  const { operators } = wallet;
  const followers = new VaultEventFollower(wallet);
  operators.onConnect((nodePubkey) => {
    void followers.follow(nodePubkey).catch((err: unknown) => logger.error({ err }, 'could not follow a vault event stream'));
  });
  await operators.connect(options.operators);

  const auditors: AuditorSource[] = options.auditors.map((a) => {
    const client = new AuditorClient({ url: a.url, pubkey: a.pubkey });
    return { pubkey: a.pubkey, reports: async (operator, since) => (await client.reports(operator, since)).reports };
  });
  const refreshScores = () => operators.refreshScores(auditors, nowSeconds()).catch((err: unknown) => logger.warn({ err }, 'score refresh failed'));
  await refreshScores();
  const refreshPending = () => refreshPendingOutgoing(wallet).catch((err: unknown) => logger.warn({ err }, 'pending payment refresh failed'));
  await refreshPending();
  const runReconcile = () => reconcile(wallet).catch((err: unknown) => logger.warn({ err }, 'reconciliation failed'));
  const timers = [
    setInterval(refreshScores, SCORE_REFRESH_MS),
    setInterval(refreshPending, PENDING_REFRESH_MS),
    setInterval(() => void operators.probeUnavailable(), PROBE_UNAVAILABLE_MS),
    setInterval(runReconcile, (options.reconcileIntervalSeconds ?? 300) * 1000),
  ];
  for (const t of timers) t.unref();

  const pool = new RelayPool(options.relays, logger.child({ component: 'relays' }));
  const identity = { alias: options.alias, servedMethods: SERVED_METHODS };
  const capabilities = [...SERVED_METHODS, ...GRANTABLE_CAPABILITIES];
  const responder = new NwcResponder(db, pool, keys, wallet, identity, logger.child({ component: 'nwc' }), {
    ...(options.requestMaxAgeSeconds ? { maxRequestAgeSeconds: options.requestMaxAgeSeconds } : {}),
    ...(options.requestLeaseSeconds ? { leaseSeconds: options.requestLeaseSeconds } : {}),
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
  });
  const infoEvents = new InfoEventPublisher(db, pool, keys, capabilities, logger.child({ component: 'nwc' }));
  const notifier = new NotificationSender(db, pool, keys, logger.child({ component: 'notifications' }));
  wallet.notifications = notifier;

  let publicUrl = options.publicUrl;
  const http = createHttpServer({
    db,
    wallet,
    logger,
    servicePubkey: keys.servicePubkey,
    relays: options.relays,
    servedMethods: capabilities,
    servicePubkeyFor: (connectionPubkey) => keys.forConnection(connectionPubkey).pubkey,
    onRegistered: (connection) => {
      responder.listenFor(connection);
      void infoEvents.publishFor(connection).catch((err: unknown) => logger.warn({ err: String(err) }, 'could not publish a connection info event; will retry'));
    },
    publicUrl: () => publicUrl ?? '',
    ready: () => ({ ready: pool.isLive(), database: true, relays: pool.status() }),
    devnet: options.devnet,
  });
  const address = await http.listen({ host: options.httpHost, port: options.httpPort });
  publicUrl ??= address;

  await responder.start();
  infoEvents.start();
  notifier.start();

  let stopped: Promise<void> | undefined;
  return {
    url: publicUrl,
    keys,
    wallet,
    stop: () =>
      (stopped ??= (async () => {
        await http.close();
        // Work waiting on vaults gives up at once; its requests are resumed by the next start.
        stopping.abort();
        await responder.drain(options.drainTimeoutMs ?? 10_000);
        infoEvents.stop();
        await notifier.stop();
        for (const t of timers) clearInterval(t);
        followers.stop();
        pool.close();
        operators.stop();
        await db.destroy();
      })()),
  };
}
