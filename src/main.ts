import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { createWallet, startBridge } from './app.ts';
import { reconcile } from './deposits/reconcile.ts';
import { deriveBridgeKeys } from './nwc/keys.ts';
import type { Config } from './config.ts';
import { openDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { startDevnet, type Devnet } from './devnet/devnet.ts';
import { createLogger } from './log.ts';
import { loadMasterKey } from './ops/master-key.ts';
import { BridgeMetrics } from './metrics/metrics.ts';
import { SERVED_METHODS } from './nwc/methods/registry.ts';
import { logV1Operators, operatorEntriesOf, v1OperatorsOf } from './ops/vaults-reload.ts';
import { readVaultsFile } from './vault-client/vaults-file.ts';

async function openMigrated(config: Config) {
  const { db, backend } = await openDatabase({ databaseUrl: config.databaseUrl, poolSize: config.databasePoolSize, pgliteDir: path.join(config.dataDir, 'pglite') });
  await migrateToLatest(db);
  return { db, backend };
}

export async function runMigrations(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const { db, backend } = await openMigrated(config);
  await db.destroy();
  logger.info({ backend }, 'database migrated');
}

function onSignals(stop: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => handler('SIGINT'));
  process.once('SIGTERM', () => handler('SIGTERM'));
}

/** SIGHUP re-reads the vaults file (instead of ending the process, Node's default). */
function onReloadSignal(reload: () => Promise<unknown>, logger: Logger): void {
  process.on('SIGHUP', () => {
    logger.info({ signal: 'SIGHUP' }, 'reloading the vaults file');
    void reload();
  });
}

function devnetPorts(config: Config) {
  const base = config.devnetPort;
  // Port 0 everywhere lets each part pick a free port (the URLs then change on restart).
  const next = (n: number) => (base === 0 ? 0 : base + n);
  return {
    dataDir: config.dataDir,
    relayPort: config.relayPort,
    controlPort: base,
    operatorPorts: [next(1), next(2), next(3)],
    auditorPort: next(4),
  };
}

/**
 * `npm start`: the bridge, plus whatever devnet part is not configured (a relay unless
 * NWC_RELAYS is set, vault operators and an auditor unless VAULTS_FILE is set).
 */
export async function runService(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  // First: a production start without its key stops before anything else starts.
  const { key: masterKey, source: masterKeySource } = loadMasterKey(config, logger);
  logger.info({ master_key_source: masterKeySource }, 'master key loaded');
  const needRelay = config.nwcRelays === undefined;
  const needVaults = config.vaultsFile === undefined;
  let devnet: Devnet | undefined;
  if (needRelay || needVaults) {
    devnet = await startDevnet({ ...devnetPorts(config), relay: needRelay, vaults: needVaults, logger: logger.child({ component: 'devnet' }) });
  }
  const relays = config.nwcRelays ?? [devnet!.relayUrl];
  const vaults = config.vaultsFile ? readVaultsFile(config.vaultsFile) : devnet!.vaultsFile;
  // The devnet's own file (local mode, with a data dir) may be edited and reloaded too.
  const vaultsFile = config.vaultsFile ?? devnet?.vaultsFilePath ?? undefined;
  // v1 operators are listed, never used: the bridge holds no deposit key (docs/vault-api-v1.md).
  const v1Operators = v1OperatorsOf(vaults);
  logV1Operators(logger, v1Operators);
  const { db, backend } = await openMigrated(config);
  const bridge = await startBridge({
    db,
    masterKey,
    relays,
    operators: operatorEntriesOf(vaults),
    v1Operators,
    auditors: vaults.auditors,
    httpHost: config.httpHost,
    httpPort: config.httpPort,
    publicUrl: config.publicUrl,
    alias: config.bridgeName,
    logger,
    devnet: devnet ? () => devnet.describe() : undefined,
    requestMaxAgeSeconds: config.requestMaxAgeSeconds,
    requestLeaseSeconds: config.requestLeaseSeconds,
    reconcileIntervalSeconds: config.reconcileIntervalSeconds,
    rateLimit: config.rateLimit,
    ...(config.trustProxy !== undefined ? { trustProxy: config.trustProxy } : {}),
    instanceId: config.instanceId,
    shard: config.shard,
    vaultsFile,
    // One bridge per process here: the process's own metrics (CPU, memory, event loop) too.
    metrics: new BridgeMetrics(SERVED_METHODS, { processMetrics: true }),
  });
  onSignals(async () => {
    await bridge.stop();
    await devnet?.stop();
  }, logger);
  if (vaultsFile) onReloadSignal(() => bridge.reloadVaults(), logger);

  const lines = [
    '',
    `deposit-bridge is running (${backend === 'pglite' ? `embedded database in ${config.dataDir}` : 'PostgreSQL'}).`,
    `  HTTP API:            ${bridge.url}`,
    `  NWC relays:          ${relays.join(', ')}`,
    `  wallet service key:  ${bridge.keys.servicePubkey}`,
  ];
  if (devnet) lines.push(`  devnet:              ${devnet.controlUrl} (operators: ${devnet.operators.map((o) => o.name).join(', ') || 'configured'})`);
  lines.push(
    '',
    'Create a connection (prints a nostr+walletconnect:// URI as its last line):',
    `  npx deposit-bridge connect --url ${bridge.url} --name my-wallet`,
  );
  if (devnet && needVaults) {
    lines.push(
      'Fund it: ask your wallet for an invoice (make_invoice), then pay it from the devnet payer:',
      `  npx deposit-bridge devnet pay <bolt11> --url ${bridge.url}`,
      'Get an invoice to pay from your wallet:',
      `  npx deposit-bridge devnet invoice 1000 --url ${bridge.url}`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n\n');
}

/**
 * `deposit-bridge reconcile`: compares every deposit with the balance its vault signed and
 * prints the differences; exits 1 when there are any. With the embedded database, run it while
 * the service is stopped (PGlite is one process's); with PostgreSQL, at any time.
 */
export async function runReconcile(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const vaultsFile = config.vaultsFile ?? path.join(config.dataDir, 'devnet', 'vaults.json');
  if (!existsSync(vaultsFile)) throw new Error(`no vaults file at ${vaultsFile}: set VAULTS_FILE`);
  const vaults = readVaultsFile(vaultsFile);
  const { db } = await openMigrated(config);
  try {
    const wallet = createWallet(db, deriveBridgeKeys(loadMasterKey(config, logger).key), logger);
    await wallet.operators.connect(operatorEntriesOf(vaults));
    wallet.operators.stop();
    const results = await reconcile(wallet);
    for (const r of results) {
      process.stdout.write(`${r.status.padEnd(11)} ${r.operator.padEnd(12)} user ${r.userPubkey.slice(0, 12)}…  journal ${r.bridgeMsat} msat  vault ${r.vaultMsat ?? '-'} msat\n`);
    }
    const differing = results.filter((r) => r.status === 'differs').length;
    process.stdout.write(`${results.length} deposit(s) checked, ${differing} differ\n`);
    if (differing > 0) process.exitCode = 1;
  } finally {
    await db.destroy();
  }
}

/** `deposit-bridge devnet`: the devnet alone, for a bridge started separately. */
export async function runDevnet(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const devnet = await startDevnet({ ...devnetPorts(config), relay: true, vaults: true, logger: logger.child({ component: 'devnet' }) });
  onSignals(() => devnet.stop(), logger);
  const vaultsFile = path.join(config.dataDir, 'devnet', 'vaults.json');
  process.stdout.write(
    [
      '',
      `devnet is running: relay ${devnet.relayUrl}, control ${devnet.controlUrl}`,
      ...devnet.operators.map((o) => `  ${o.name}: ${o.url} (node ${o.nodePubkey})`),
      '',
      'Start a bridge against it with:',
      `NWC_RELAYS=${devnet.relayUrl}`,
      `VAULTS_FILE=${vaultsFile}`,
      '',
    ].join('\n'),
  );
}
