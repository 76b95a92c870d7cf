import type { Logger } from 'pino';
import type { Db } from './db/database.ts';
import { FinalityNotifier, type WalletContext } from './deposits/context.ts';
import { OperatorDirectory, type AuditorSource, type OperatorEntry } from './deposits/operators.ts';
import { refreshPendingOutgoing } from './deposits/payments.ts';
import { reconcile } from './deposits/reconcile.ts';
import { rebalanceOnce } from './deposits/rebalancer.ts';
import { SWEEP_INTERVAL_MS, sweepOnce } from './deposits/sweep.ts';
import { VaultEventFollower } from './deposits/vault-events.ts';
import { createHttpServer } from './http/server.ts';
import { BridgeMetrics } from './metrics/metrics.ts';
import { JobLeader, leaderJob } from './ops/job-leader.ts';
import { loadScores } from './ops/score-sync.ts';
import { openDepositsAtOperator, VaultsReloader, watchVaultsFile, type V1OperatorListing, type VaultsReload } from './ops/vaults-reload.ts';
import { nowSeconds } from './protocol/nostr-event.ts';
import { InfoEventPublisher } from './nwc/info-event.ts';
import { NotificationSender } from './nwc/notifications.ts';
import type { RateLimit } from './nwc/rate-limiter.ts';
import { deriveBridgeKeys, deriveSecret, type BridgeKeys } from './nwc/keys.ts';
import { LnurlService } from './lnurl/pay.ts';
import { ZapReceiptPublisher } from './lnurl/zap-receipts.ts';
import { SERVED_METHODS } from './nwc/methods/registry.ts';
import { GRANTABLE_CAPABILITIES } from './deposits/connections.ts';
import { RelayPool } from './nwc/relay-pool.ts';
import { NwcResponder } from './nwc/responder.ts';
import { AuditorClient } from './vault-client/auditor-client.ts';
import { HttpVaultClient } from './vault-client/http-vault-client.ts';
import type { Shard } from './nwc/shard.ts';
import type { TrustProxy } from './config.ts';

export interface BridgeOptions {
  /** An open, migrated database; the bridge closes it on stop. */
  db: Db;
  masterKey: Uint8Array;
  relays: readonly string[];
  operators: readonly OperatorEntry[];
  /** The vaults file's v1 operators: listed at GET /api/info, never called (docs/vault-api-v1.md). */
  v1Operators?: readonly V1OperatorListing[];
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
  /** How often the rebalancer looks at users who allow it (default 600 s; docs/multi-vault.md). */
  rebalanceIntervalSeconds?: number;
  /** Requests per second and burst each connection may send (default 10/s, burst 60). */
  rateLimit?: RateLimit;
  /** Which proxies' X-Forwarded-For to believe for client addresses (TRUST_PROXY). */
  trustProxy?: TrustProxy;
  /** This instance's metrics, served at GET /metrics (default: a new registry). */
  metrics?: BridgeMetrics;
  /** How long the background-job lease holds without renewal (default 15 s). */
  jobLeaseSeconds?: number;
  /** A stable name of this instance (its machine), unique among live instances; default random. */
  instanceId?: string | undefined;
  /** Answer only the connections in this key range (several instances, docs/scaling.md); default all. */
  shard?: Shard | undefined;
  /**
   * The vaults file `operators` and `auditors` were read from: watched, and re-read by
   * `reloadVaults()`, so operators can be added and removed while running (docs/deploy.md).
   */
  vaultsFile?: string | undefined;
  /** How long the vaults file must be quiet before a change is applied (default 500 ms). */
  vaultsFileDebounceMs?: number;
}

export interface RunningBridge {
  url: string;
  keys: BridgeKeys;
  wallet: WalletContext;
  metrics: BridgeMetrics;
  /** Whether this instance runs the background jobs (one instance among those on a database). */
  jobs: Pick<JobLeader, 'isLeader' | 'id'>;
  /** Re-reads the vaults file and applies it (SIGHUP); `invalid` without one. */
  reloadVaults(): Promise<VaultsReload>;
  stop(): Promise<void>;
}

/** The deposit services on a database, with a directory of operators called with the bridge's vault key. */
export function createWallet(db: Db, keys: BridgeKeys, logger: Logger, vaultTimeoutMs?: number, stopping: AbortSignal = new AbortController().signal): WalletContext {
  const operators = new OperatorDirectory(
    db,
    (url) =>
      new HttpVaultClient({
        url,
        secretKey: keys.vaultAuthSecret,
        logger,
        ...(vaultTimeoutMs ? { timeoutMs: vaultTimeoutMs } : {}),
        sessions: true,
        // Every call is an observation of the operator (docs/reputation.md).
        onCall: (outcome) => operators.recordCall(url, outcome),
      }),
    logger.child({ component: 'operators' }),
  );
  return { db, operators, logger: logger.child({ component: 'deposits' }), finality: new FinalityNotifier(), stopping, now: nowSeconds };
}

const SCORE_REFRESH_MS = 60_000;
const RELAYS_LIVE_WAIT_MS = 5_000;
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
  let started = false;
  operators.onConnect((nodePubkey) => {
    // A node re-added under a new URL is followed through its new client, from the saved cursor.
    followers.unfollow(nodePubkey);
    void followers.follow(nodePubkey).catch((err: unknown) => logger.error({ err }, 'could not follow a vault event stream'));
    // An operator added while running (or first reached after the start): users get a deposit there too.
    if (started) void openDepositsAtOperator(wallet, nodePubkey).catch((err: unknown) => logger.error({ err }, 'could not open deposits at a new vault operator'));
  });
  await operators.connect(options.operators);
  started = true;

  const auditorSources = (list: BridgeOptions['auditors']): AuditorSource[] =>
    list.map((a) => {
      const client = new AuditorClient({ url: a.url, pubkey: a.pubkey });
      return { pubkey: a.pubkey, reports: async (operator, since) => (await client.reports(operator, since)).reports };
    });
  // Replaced when the vaults file is reloaded; the score refresh reads it each time.
  let auditors = auditorSources(options.auditors);
  const vaultsFile = options.vaultsFile;
  let v1Operators = options.v1Operators ?? [];
  const reloader = vaultsFile
    ? new VaultsReloader(vaultsFile, { operators, setAuditors: (list) => (auditors = auditorSources(list)), setV1Operators: (list) => (v1Operators = list), logger: logger.child({ component: 'vaults-file' }) })
    : undefined;
  const vaultsWatch =
    reloader && vaultsFile ? watchVaultsFile(vaultsFile, () => void reloader.reload(), { logger, ...(options.vaultsFileDebounceMs ? { debounceMs: options.vaultsFileDebounceMs } : {}) }) : undefined;
  const metrics = options.metrics ?? new BridgeMetrics(SERVED_METHODS);
  metrics.attach({ db, operators: () => operators.all() });
  // Each instance catches up once at start; after that the periodic jobs run on one instance only.
  await operators.refreshScores(auditors, nowSeconds()).catch((err: unknown) => logger.warn({ err }, 'score refresh failed'));
  await refreshPendingOutgoing(wallet).catch((err: unknown) => logger.warn({ err }, 'pending payment refresh failed'));
  const jobLeader = new JobLeader(db, logger.child({ component: 'jobs' }), {
    ...(options.jobLeaseSeconds ? { leaseSeconds: options.jobLeaseSeconds } : {}),
    instanceId: options.instanceId,
    onChange: (leads) => metrics.leading(leads),
  });
  await jobLeader.start();
  const jobHooks = { logger, ran: (job: string, outcome: 'ok' | 'failed') => metrics.jobRan(job, outcome) };
  const jobs = [
    leaderJob('score-refresh', SCORE_REFRESH_MS, jobLeader, () => operators.refreshScores(auditors, nowSeconds()), jobHooks),
    leaderJob('pending-refresh', PENDING_REFRESH_MS, jobLeader, () => refreshPendingOutgoing(wallet), jobHooks),
    leaderJob('reconcile', (options.reconcileIntervalSeconds ?? 300) * 1000, jobLeader, async () => metrics.reconciled(await reconcile(wallet)), jobHooks),
    leaderJob('rebalance', (options.rebalanceIntervalSeconds ?? 600) * 1000, jobLeader, () => rebalanceOnce(wallet), jobHooks),
    leaderJob('sweep', SWEEP_INTERVAL_MS, jobLeader, () => sweepOnce(wallet, keys), jobHooks),
  ];
  const timers = [
    // Availability is each instance's own observation.
    setInterval(() => void operators.probeUnavailable(), PROBE_UNAVAILABLE_MS),
    // The other instances write down their own observations and take the scores the leader computed.
    setInterval(() => {
      if (jobLeader.isLeader()) return;
      void operators
        .flushObservations()
        .then(() => loadScores(db, operators.all()))
        .catch((err: unknown) => logger.warn({ err }, 'could not share observations or load operator scores'));
    }, SCORE_REFRESH_MS),
  ];
  for (const t of timers) t.unref();

  const pool = new RelayPool(options.relays, logger.child({ component: 'relays' }));
  const identity = { alias: options.alias, servedMethods: SERVED_METHODS };
  const capabilities = [...SERVED_METHODS, ...GRANTABLE_CAPABILITIES];
  const responder = new NwcResponder(db, pool, keys, wallet, identity, logger.child({ component: 'nwc' }), {
    ...(options.requestMaxAgeSeconds ? { maxRequestAgeSeconds: options.requestMaxAgeSeconds } : {}),
    ...(options.requestLeaseSeconds ? { leaseSeconds: options.requestLeaseSeconds } : {}),
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    metrics,
    shard: options.shard,
  });
  const runsJobs = () => jobLeader.isLeader();
  const infoEvents = new InfoEventPublisher(db, pool, keys, capabilities, logger.child({ component: 'nwc' }), runsJobs);
  const notifier = new NotificationSender(db, pool, keys, logger.child({ component: 'notifications' }), runsJobs);
  // Zap receipts (NIP-57) are signed with their own key, the `nostrPubkey` of the pay requests.
  const zapSecret = deriveSecret(options.masterKey, 'nostr-zap-receipts');
  const zapReceipts = new ZapReceiptPublisher(db, zapSecret, logger.child({ component: 'zaps' }));
  wallet.notifications = notifier;
  wallet.zapReceipts = zapReceipts;

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
    v1Operators: () => v1Operators,
    ...(options.trustProxy !== undefined ? { trustProxy: options.trustProxy } : {}),
    metrics,
    lnurl: new LnurlService({ wallet, publicUrl: () => publicUrl ?? '', zapSecret }),
  });
  const address = await http.listen({ host: options.httpHost, port: options.httpPort });
  publicUrl ??= address;

  await responder.start();
  infoEvents.start();
  notifier.start();
  zapReceipts.start();
  // Started means answering: give the relays a moment to confirm the subscriptions (a relay that
  // is down does not hold up the start; the pool keeps trying and /health says so).
  const liveBy = Date.now() + RELAYS_LIVE_WAIT_MS;
  while (!pool.isLive() && Date.now() < liveBy) await new Promise((resolve) => setTimeout(resolve, 25));

  let stopped: Promise<void> | undefined;
  return {
    url: publicUrl,
    keys,
    wallet,
    metrics,
    jobs: jobLeader,
    reloadVaults: () => {
      if (stopped) return Promise.resolve({ status: 'failed', reason: 'the bridge is stopping' });
      return reloader?.reload() ?? Promise.resolve({ status: 'invalid', reason: 'the bridge was started without a vaults file' });
    },
    stop: () =>
      (stopped ??= (async () => {
        vaultsWatch?.close();
        await reloader?.idle();
        await http.close();
        // Work waiting on vaults gives up at once; its requests are resumed by the next start.
        stopping.abort();
        await responder.drain(options.drainTimeoutMs ?? 10_000);
        infoEvents.stop();
        await notifier.stop();
        await zapReceipts.stop();
        for (const t of timers) clearInterval(t);
        for (const job of jobs) await job.stop();
        await jobLeader.stop();
        await followers.stop();
        pool.close();
        operators.stop();
        await db.destroy();
      })()),
  };
}
