/**
 * Bench part: one bridge instance (src/app.ts startBridge) in its own process, so
 * process.cpuUsage() is the bridge's own. Optionally times each request inside the bridge:
 * from the moment the responder receives it to the moment its response is published, and the
 * part of that spent waiting on vault calls (attributed through AsyncLocalStorage).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import diagnostics from 'node:diagnostics_channel';
import pg from 'pg';
import { hexToBytes } from '@noble/hashes/utils.js';
import type { Event } from 'nostr-tools/pure';
import { startBridge, type RunningBridge } from '../../src/app.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { silentLogger } from '../../src/log.ts';
import { RelayPool } from '../../src/nwc/relay-pool.ts';
import { NwcResponder } from '../../src/nwc/responder.ts';
import { serve } from '../lib/ipc.ts';

export interface BridgeStart {
  databaseUrl?: string;
  /** In-memory PGlite when neither this nor databaseUrl is given. */
  pgliteDir?: string;
  relays: string[];
  operators: { name: string; url: string; node_pubkey: string }[];
  auditors: { url: string; pubkey: string }[];
  masterKeyHex: string;
  poolSize?: number;
}

/** One request as seen inside the bridge (ms). */
export interface InsideTiming {
  id: string;
  insideMs: number;
  vaultMs: number;
  /** Waiting on PostgreSQL statements made for this request (a batch's statement counts for the request that started it). */
  databaseMs: number;
}

interface RequestContext {
  id: string;
  receivedAt: number;
  vaultMs: number;
  databaseMs: number;
}

const context = new AsyncLocalStorage<RequestContext>();
let timing = false;
let timings: InsideTiming[] = [];
let vaultUrls: string[] = [];

const receive = NwcResponder.prototype.receive;
NwcResponder.prototype.receive = function (this: NwcResponder, event: Event) {
  if (!timing) return receive.call(this, event);
  return context.run({ id: event.id, receivedAt: performance.now(), vaultMs: 0, databaseMs: 0 }, () => receive.call(this, event));
};
const publish = RelayPool.prototype.publish;
RelayPool.prototype.publish = function (this: RelayPool, event: Event) {
  const ctx = timing ? context.getStore() : undefined;
  if (ctx && event.kind === 23195) timings.push({ id: ctx.id, insideMs: performance.now() - ctx.receivedAt, vaultMs: ctx.vaultMs, databaseMs: ctx.databaseMs });
  return publish.call(this, event);
};
// Vault calls, from the request's creation (in the NWC request's async context) to its end, through
// undici's diagnostics channels: the vault client calls undici's request, which has nothing to wrap.
const vaultCalls = new WeakMap<object, { ctx: RequestContext; t0: number }>();
diagnostics.subscribe('undici:request:create', (message) => {
  const { request } = message as { request: { origin: string; path: string } };
  const ctx = context.getStore();
  if (ctx && vaultUrls.some((v) => `${request.origin}${request.path}`.startsWith(v))) vaultCalls.set(request, { ctx, t0: performance.now() });
});
const vaultCallEnded = (message: unknown) => {
  const { request } = message as { request: object };
  const call = vaultCalls.get(request);
  if (!call) return;
  vaultCalls.delete(request);
  call.ctx.vaultMs += performance.now() - call.t0;
};
diagnostics.subscribe('undici:request:trailers', vaultCallEnded);
diagnostics.subscribe('undici:request:error', vaultCallEnded);

// Patched before any connection is made: the pool's clients (and the statement-preparing wrapper) call this.
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const result: unknown = Reflect.apply(query, this, args);
  const ctx = timing ? context.getStore() : undefined;
  if (ctx && result instanceof Promise) {
    const t0 = performance.now();
    const done = () => {
      ctx.databaseMs += performance.now() - t0;
    };
    result.then(done, done);
  }
  return result;
} as typeof query;

let bridge: RunningBridge | undefined;

serve({
  async start(args: BridgeStart) {
    const t0 = performance.now();
    vaultUrls = args.operators.map((o) => o.url);
    const { db } = await openDatabase(args.databaseUrl ? { databaseUrl: args.databaseUrl, ...(args.poolSize ? { poolSize: args.poolSize } : {}) } : { pgliteDir: args.pgliteDir });
    await migrateToLatest(db);
    bridge = await startBridge({
      db,
      masterKey: hexToBytes(args.masterKeyHex),
      relays: args.relays,
      operators: args.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
      auditors: args.auditors,
      httpHost: '127.0.0.1',
      httpPort: 0,
      alias: 'bench-bridge',
      logger: silentLogger,
      drainTimeoutMs: 2_000,
      // The bench drives each connection far above a person's rate.
      rateLimit: { perSecond: 1_000_000, burst: 1_000_000 },
    });
    return { url: bridge.url, servicePubkey: bridge.keys.servicePubkey, startMs: performance.now() - t0 };
  },
  /** Starts (true) or stops timing requests inside the bridge; stopping returns what was timed. */
  timing(on: boolean) {
    timing = on;
    const taken = timings;
    timings = [];
    return taken;
  },
  async stop() {
    await bridge?.stop();
    bridge = undefined;
  },
});
