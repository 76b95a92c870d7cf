import path from 'node:path';
import { z } from 'zod';
import { shardSchema, type Shard } from './nwc/shard.ts';

const port = z.coerce.number().int().min(0).max(65535);
const wsUrl = z.string().regex(/^wss?:\/\/[^\s,]+$/, 'expected a ws:// or wss:// URL');

const envSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL').optional(),
  /** Connections to PostgreSQL this instance keeps at most (docs/scaling.md). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(100).default(5),
  DATA_DIR: z.string().min(1).default('./data'),
  NWC_RELAYS: z
    .string()
    .optional()
    .transform((s) => (s === undefined || s.trim() === '' ? undefined : s.split(',').map((r) => r.trim())))
    .pipe(z.array(wsUrl).min(1).optional()),
  HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HTTP_PORT: port.default(8080),
  /** The bridge's base URL as clients see it (NIP-98 `u` tags are checked against it). */
  PUBLIC_URL: z.url().optional(),
  VAULTS_FILE: z.string().min(1).optional(),
  RELAY_PORT: port.default(7447),
  /** The devnet control server's port; its vault operators and auditor take the next four. */
  DEVNET_PORT: port.max(65530).default(7450),
  /** Hex 32-byte master key; else MASTER_KEY_FILE; else generated into DATA_DIR. */
  MASTER_KEY: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'expected 64 hex characters')
    .optional(),
  MASTER_KEY_FILE: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BRIDGE_NAME: z.string().max(64).default('deposit-bridge'),
  /** NIP-47 requests older than this when first seen are not executed (vaults allow 300 s). */
  REQUEST_MAX_AGE_SECONDS: z.coerce.number().int().min(10).max(300).default(300),
  /** A claim on a request lapses after this without renewal; another instance then finishes it. */
  REQUEST_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /** How often balances are compared with what the vaults signed. */
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(5).default(300),
  /** Requests per second each connection may send, on average and in a burst (RATE_LIMITED beyond). */
  RATE_LIMIT_PER_SECOND: z.coerce.number().positive().default(10),
  RATE_LIMIT_BURST: z.coerce.number().int().positive().default(60),
  /** A stable, unique name of this instance (its machine); Fly.io sets FLY_MACHINE_ID. */
  INSTANCE_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1 to 64 of A-Z a-z 0-9 . _ -').optional(),
  FLY_MACHINE_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional().catch(undefined),
  /**
   * Behind a reverse proxy (Fly.io's): which X-Forwarded-For entries to believe for the client
   * address (rate limits, logs). `true` all, a number of proxy hops, or a comma-separated list of
   * proxy addresses or CIDRs; unset: none (the address is the socket's).
   */
  TRUST_PROXY: z
    .string()
    .trim()
    .optional()
    .transform((s) => (s === undefined || s === '' || s === 'false' ? undefined : s === 'true' ? true : /^\d+$/.test(s) ? Number(s) : s.split(',').map((a) => a.trim())))
    .pipe(z.union([z.literal(true), z.number().int().min(1).max(10), z.array(z.string().regex(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, 'expected proxy addresses or CIDRs')).min(1)]).optional()),
  /** `<index>/<count>`: answer only the connections in this key range (docs/scaling.md). */
  SHARD: shardSchema.optional(),
});

export interface Config {
  databaseUrl: string | undefined;
  databasePoolSize: number;
  dataDir: string;
  /** Relays to answer NIP-47 on; undefined means: run a local devnet relay. */
  nwcRelays: string[] | undefined;
  httpHost: string;
  httpPort: number;
  publicUrl: string | undefined;
  /** Vault operators file; undefined means: run the devnet's operators. */
  vaultsFile: string | undefined;
  relayPort: number;
  devnetPort: number;
  masterKey: string | undefined;
  masterKeyFile: string | undefined;
  logLevel: string;
  bridgeName: string;
  requestMaxAgeSeconds: number;
  requestLeaseSeconds: number;
  reconcileIntervalSeconds: number;
  rateLimit: { perSecond: number; burst: number };
  /** Names this instance in the background-job lease: INSTANCE_ID, else FLY_MACHINE_ID, else random per start. */
  instanceId: string | undefined;
  /** The connections this instance answers; undefined: all. */
  shard: Shard | undefined;
  /** Which proxies' X-Forwarded-For to believe (Fastify's `trustProxy`); undefined: none. */
  trustProxy: TrustProxy | undefined;
}

export type TrustProxy = true | number | string[];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads the configuration once from an environment. Fails naming the bad variable; nothing
 * else in the project reads process.env.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid configuration: ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  const e = parsed.data;
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    dataDir: path.resolve(e.DATA_DIR),
    nwcRelays: e.NWC_RELAYS,
    httpHost: e.HTTP_HOST,
    httpPort: e.HTTP_PORT,
    publicUrl: e.PUBLIC_URL?.replace(/\/$/, ''),
    vaultsFile: e.VAULTS_FILE === undefined ? undefined : path.resolve(e.VAULTS_FILE),
    relayPort: e.RELAY_PORT,
    devnetPort: e.DEVNET_PORT,
    masterKey: e.MASTER_KEY,
    masterKeyFile: e.MASTER_KEY_FILE,
    logLevel: e.LOG_LEVEL,
    bridgeName: e.BRIDGE_NAME,
    requestMaxAgeSeconds: e.REQUEST_MAX_AGE_SECONDS,
    requestLeaseSeconds: e.REQUEST_LEASE_SECONDS,
    reconcileIntervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
    rateLimit: { perSecond: e.RATE_LIMIT_PER_SECOND, burst: e.RATE_LIMIT_BURST },
    instanceId: e.INSTANCE_ID ?? e.FLY_MACHINE_ID,
    shard: e.SHARD,
    trustProxy: e.TRUST_PROXY,
  });
}
