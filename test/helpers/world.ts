import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startBridge, type BridgeOptions, type RunningBridge } from '../../src/app.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { startDevnet, type Devnet } from '../../src/devnet/devnet.ts';
import { startRelay, type DevnetRelay } from '../../src/devnet/relay.ts';
import type { RateLimit } from '../../src/nwc/rate-limiter.ts';
import { pino } from 'pino';
import { silentLogger } from '../../src/log.ts';
import { createPostgresDatabase, type Backend } from './database.ts';
import type { TrustProxy } from '../../src/config.ts';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

/** A devnet and a bridge on it, as `npm start` runs them, on free ports. */
export interface World {
  devnet: Devnet;
  /** Relays besides the devnet's, which the bridge also answers on. */
  extraRelays: DevnetRelay[];
  bridge: RunningBridge;
  backend: Backend;
  masterKey: Uint8Array;
  /** The PostgreSQL database the bridge uses (postgres backend only). */
  databaseUrl: string | undefined;
  /** Starts another bridge instance on the same database, keys, relays and vaults (postgres only). */
  startAnotherInstance(overrides?: InstanceOptions): Promise<RunningBridge>;
  /** Stops the bridge and starts it again on the same database, keys and devnet. */
  restartBridge(): Promise<RunningBridge>;
  stop(): Promise<void>;
}

/** What may differ between instances of one world. */
export type InstanceOptions = Pick<BridgeOptions, 'instanceId' | 'shard'>;

export async function startWorld(
  backend: Backend,
  options: { auditIntervalMs?: number; auditWindowMs?: number; extraRelays?: number; vaultTimeoutMs?: number; requestLeaseSeconds?: number; rateLimit?: RateLimit; trustProxy?: TrustProxy; instance?: InstanceOptions } = {},
): Promise<World> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-world-'));
  const devnet = await startDevnet({
    dataDir: null,
    relayPort: 0,
    controlPort: 0,
    operatorPorts: [0, 0, 0],
    auditorPort: 0,
    ...(options.auditIntervalMs ? { auditIntervalMs: options.auditIntervalMs } : {}),
    ...(options.auditWindowMs ? { auditWindowMs: options.auditWindowMs } : {}),
  });
  const extraRelays = await Promise.all(Array.from({ length: options.extraRelays ?? 0 }, () => startRelay({ port: 0 })));
  const pg = backend === 'postgres' ? await createPostgresDatabase() : undefined;
  const masterKey = crypto.getRandomValues(new Uint8Array(32));
  const others: RunningBridge[] = [];
  const start = async (instance: InstanceOptions = {}) => {
    const { db } = await openDatabase(pg ? { databaseUrl: pg.url } : { pgliteDir: path.join(dir, 'pglite') });
    await migrateToLatest(db);
    return startBridge({
      db,
      masterKey,
      relays: [devnet.relayUrl, ...extraRelays.map((r) => r.url)],
      operators: devnet.vaultsFile.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
      auditors: devnet.vaultsFile.auditors,
      httpHost: '127.0.0.1',
      httpPort: 0,
      alias: 'test-bridge',
      drainTimeoutMs: 500,
      ...(options.vaultTimeoutMs ? { vaultTimeoutMs: options.vaultTimeoutMs } : {}),
      ...(options.requestLeaseSeconds ? { requestLeaseSeconds: options.requestLeaseSeconds } : {}),
      ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
      ...(options.trustProxy !== undefined ? { trustProxy: options.trustProxy } : {}),
      // WORLD_LOG=<file> keeps the bridge's errors, for looking into a failing test.
      logger: process.env.WORLD_LOG ? pino({ level: 'error' }, pino.destination(process.env.WORLD_LOG)) : silentLogger,
      devnet: () => devnet.describe(),
      ...instance,
    });
  };
  const world: World = {
    devnet,
    extraRelays,
    bridge: await start(options.instance),
    backend,
    masterKey,
    databaseUrl: pg?.url,
    startAnotherInstance: async (overrides) => {
      if (!pg) throw new Error('several instances need PostgreSQL');
      const other = await start(overrides);
      others.push(other);
      return other;
    },
    restartBridge: async () => {
      await world.bridge.stop();
      world.bridge = await start(options.instance);
      return world.bridge;
    },
    stop: async () => {
      for (const other of others) await other.stop();
      await world.bridge.stop();
      await devnet.stop();
      for (const relay of extraRelays) await relay.stop();
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await waitFor(async () => (await fetch(`${world.bridge.url}/health`)).status === 200, 'bridge health');
  return world;
}

/** Runs the CLI as a person would (`npx deposit-bridge …`) and returns its output. */
export async function runCli(args: string[]): Promise<{ stdout: string; stderr: string; lastLine: string }> {
  const { stdout, stderr } = await execFileAsync(path.join(ROOT, 'node_modules/.bin/node'), [path.join(ROOT, 'bin/deposit-bridge.js'), ...args], {
    cwd: ROOT,
    timeout: 60_000,
  });
  const lines = stdout.trim().split('\n');
  return { stdout, stderr, lastLine: lines[lines.length - 1] ?? '' };
}

/** Polls until `check` is true, failing with `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
