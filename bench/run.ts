/**
 * The benchmark suite: `npm run bench` (about 2–3 minutes here) or `npm run bench:smoke`
 * (seconds; CI). Everything runs in one go on one machine so that the ratios hold even when the
 * machine is noisy: the crypto-only limit, @getalby/sdk's NWCWalletService as the peer, the
 * bridge on PostgreSQL and PGlite, pay_invoice across devnet vaults, and scale. The relay, the
 * vaults, the peer and the bridge each run in a process of their own, so each one's CPU time is
 * its own; this process is the load generator. Prints a table and writes bench/results.json
 * (bench/results.smoke.json for the smoke run).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bytesToHex } from '@noble/hashes/utils.js';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { openDatabase } from '../src/db/database.ts';
import { schnorrBackend } from '../src/protocol/schnorr.ts';
import { registerConnection, insertConnections, type Registered } from './lib/connections.ts';
import { CryptoSampler, measureCryptoLimit, type CryptoLimit } from './lib/crypto-limit.ts';
import { cpuMs, ownStats, Part, type ProcessStats } from './lib/ipc.ts';
import { closedLoop, LoadClient, openLoop, percentile, type LoadResult } from './lib/loadgen.ts';
import { analyzeBenchDatabase, createBenchDatabase, dropBenchDatabase, postgresReachable, serverCpuMs } from './lib/pg.ts';
import { printReport, ratios, type Results } from './report.ts';
import type { InsideTiming } from './procs/bridge.ts';

const smoke = process.argv.includes('--smoke');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');

/** Sizes and durations: the full run stays well under 10 minutes, the smoke run takes seconds. */
const CONFIG = smoke
  ? { cryptoIterations: 200, clients: 4, warmupMs: 300, measureMs: 1_500, payers: 2, payees: 1, payMs: 1_500, halfRateMs: 1_000, maxPayments: 60, scaleSizes: [100, 1_000], scaleRequests: 5 }
  : { cryptoIterations: 2_000, clients: 16, warmupMs: 2_000, measureMs: 15_000, payers: 16, payees: 4, payMs: 15_000, halfRateMs: 10_000, maxPayments: 4_000, scaleSizes: [1_000, 10_000, 100_000], scaleRequests: 80 };

// BENCH_MEASURE_MS lengthens (or shortens) every timed get_balance run, e.g. for a CPU profile.
if (process.env.BENCH_MEASURE_MS) CONFIG.measureMs = Number(process.env.BENCH_MEASURE_MS);

const GET_BALANCE = { method: 'get_balance', params: {} };

/**
 * BENCH_PROFILE=1 profiles the CPU of `parts` during `run` (a timed measurement only, not its
 * set-up) and writes bench/profiles/<section>-<part>.cpuprofile, for Chrome DevTools or any
 * .cpuprofile reader.
 */
async function profiled<T>(section: string, parts: Part[], run: () => Promise<T>): Promise<T> {
  if (!process.env.BENCH_PROFILE) return run();
  await Promise.all(parts.map((part) => part.call('profileStart')));
  try {
    return await run();
  } finally {
    await Promise.all(parts.map((part) => part.call('profileStop', path.join(import.meta.dirname, 'profiles', `${section}-${part.name}.cpuprofile`))));
  }
}

interface ServiceFigures {
  clients: number;
  ok: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  /** CPU per answered request, ms: the service under test, the relay, the load generator. */
  cpuMsPerRequest: number;
  /** The kernel's part of cpuMsPerRequest (socket writes to the relay and the database). */
  systemCpuMsPerRequest: number;
  relayCpuMsPerRequest: number;
  loadgenCpuMsPerRequest: number;
  /** CPU of the PostgreSQL server processes serving the bridge (PostgreSQL only; PGlite runs inside the bridge). */
  databaseCpuMsPerRequest: number | null;
  /** Crypto-only CPU per request in bursts during the timed loop (`CryptoSampler`). */
  concurrentCryptoCpuMsPerRequest: number;
  rssMb: number;
  maxRssMb: number;
}

const mb = (bytes: number) => bytes / 1024 / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitHealthy(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${timeoutMs} ms`);
    await sleep(25);
  }
}

async function connectAll(clients: LoadClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.connect()));
}

/** Requests of crypto-only work per burst, one burst a second of a timed loop. */
const CRYPTO_BURST = 40;

/** Requests for the bursts of a timed loop of `durationMs`, prepared before its CPU is counted. */
function cryptoSamplerFor(durationMs: number): CryptoSampler {
  return new CryptoSampler(CRYPTO_BURST * (Math.ceil(durationMs / 1000) + 2));
}

/**
 * Runs a timed loop with crypto-only bursts beside it (one a second, in this process), and
 * returns the crypto's CPU per request and its CPU in all, which is not the load generator's.
 */
async function withCryptoBursts<T>(sampler: CryptoSampler, run: () => Promise<T>): Promise<{ result: T; cryptoCpuMsPerRequest: number; cryptoCpuMs: number }> {
  const timer = setInterval(() => sampler.burst(CRYPTO_BURST), 1000);
  try {
    const result = await run();
    if (sampler.requests === 0) sampler.burst(CRYPTO_BURST);
    return { result, cryptoCpuMsPerRequest: sampler.cpuMsPerRequest, cryptoCpuMs: sampler.cpuMs };
  } finally {
    clearInterval(timer);
  }
}

/** Measures get_balance against a running service: warm-up, then a closed loop with CPU snapshots around it. */
async function driveGetBalance(section: string, clients: LoadClient[], service: Part, relay: Part, databaseUrl?: string): Promise<ServiceFigures> {
  await closedLoop(clients, CONFIG.warmupMs, () => GET_BALANCE);
  const sampler = cryptoSamplerFor(CONFIG.measureMs);
  const [s0, r0, d0] = await Promise.all([service.stats(), relay.stats(), databaseUrl ? serverCpuMs(databaseUrl) : null]);
  const l0 = ownStats();
  const timed = await withCryptoBursts(sampler, () => profiled(section, [service, relay], () => closedLoop(clients, CONFIG.measureMs, () => GET_BALANCE)));
  const l1 = ownStats();
  const [s1, r1, d1] = await Promise.all([service.stats(), relay.stats(), databaseUrl ? serverCpuMs(databaseUrl) : null]);
  return {
    ...figures(clients.length, timed.result, s0, s1, r0, r1, l0, l1, timed.cryptoCpuMs),
    databaseCpuMsPerRequest: perRequest(d0, d1, timed.result.ok),
    concurrentCryptoCpuMsPerRequest: timed.cryptoCpuMsPerRequest,
  };
}

function perRequest(before: number | null, after: number | null, count: number): number | null {
  return before === null || after === null ? null : Math.max(0, after - before) / Math.max(1, count);
}

/** `loadgenOtherCpuMs`: CPU this process spent on other work meanwhile (the crypto bursts). */
function figures(
  clients: number,
  result: LoadResult,
  s0: ProcessStats,
  s1: ProcessStats,
  r0: ProcessStats,
  r1: ProcessStats,
  l0: ProcessStats,
  l1: ProcessStats,
  loadgenOtherCpuMs: number,
): Omit<ServiceFigures, 'databaseCpuMsPerRequest' | 'concurrentCryptoCpuMsPerRequest'> {
  const n = Math.max(1, result.ok);
  return {
    clients,
    ok: result.ok,
    errors: result.errors,
    errorSamples: result.errorSamples,
    seconds: result.wallMs / 1000,
    throughput: result.ok / (result.wallMs / 1000),
    p50: percentile(result.latencies, 50),
    p95: percentile(result.latencies, 95),
    p99: percentile(result.latencies, 99),
    cpuMsPerRequest: cpuMs(s0, s1) / n,
    systemCpuMsPerRequest: (s1.systemUs - s0.systemUs) / 1000 / n,
    relayCpuMsPerRequest: cpuMs(r0, r1) / n,
    loadgenCpuMsPerRequest: (cpuMs(l0, l1) - loadgenOtherCpuMs) / n,
    rssMb: mb(s1.rss),
    maxRssMb: mb(s1.maxRss),
  };
}

async function startRelayPart(): Promise<{ part: Part; url: string }> {
  const part = new Part('relay', 'relay.ts');
  // A plain relay: NWC events are forwarded live, none retained for later subscribers.
  const { url } = await part.call<{ url: string }>('start', { retentionSeconds: 0 });
  return { part, url };
}

interface VaultsInfo {
  controlUrl: string;
  vaultsFile: { operators: { name: string; url: string; node_pubkey: string }[]; auditors: { url: string; pubkey: string }[] };
}

/** The V8 flags the service runs with (`npm start`, and the image's NODE_OPTIONS): the bridge measured is the one deployed. */
const SERVICE_NODE_FLAGS = (JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  .split(/\s+/)
  .filter((a) => a.startsWith('--'));

async function startBridgePart(relayUrl: string, vaults: VaultsInfo, databaseUrl: string | undefined): Promise<{ part: Part; url: string; startupMs: number }> {
  const part = new Part('bridge', 'bridge.ts', SERVICE_NODE_FLAGS);
  const started = await part.call<{ url: string }>('start', {
    ...(databaseUrl ? { databaseUrl } : {}),
    relays: [relayUrl],
    operators: vaults.vaultsFile.operators,
    auditors: vaults.vaultsFile.auditors,
    masterKeyHex: MASTER_KEY,
  });
  await waitHealthy(started.url);
  return { part, url: started.url, startupMs: performance.now() - part.startedAt };
}

async function stopBridgePart(part: Part): Promise<void> {
  await part.call('stop').catch(() => undefined);
  await part.stop();
}

/** Registers `count` connections, a few at a time, each of a new user. */
async function registerMany(bridgeUrl: string, count: number): Promise<Registered[]> {
  const out: Registered[] = [];
  for (let i = 0; i < count; i += 4) out.push(...(await Promise.all(Array.from({ length: Math.min(4, count - i) }, () => registerConnection(bridgeUrl)))));
  return out;
}

const MASTER_KEY = bytesToHex(generateSecretKey());

// ——— sections ———

async function peerSection(relay: { part: Part; url: string }): Promise<ServiceFigures> {
  const pairs = Array.from({ length: CONFIG.clients }, () => ({ wallet: generateSecretKey(), client: generateSecretKey() }));
  const peer = new Part('peer', 'peer.ts');
  try {
    await peer.call('start', { relayUrl: relay.url, connections: pairs.map((p) => ({ walletSecret: bytesToHex(p.wallet), clientPubkey: getPublicKey(p.client) })) });
    const clients = pairs.map((p) => new LoadClient(relay.url, getPublicKey(p.wallet), p.client));
    await connectAll(clients);
    try {
      return await driveGetBalance('peer', clients, peer, relay.part);
    } finally {
      for (const c of clients) c.close();
    }
  } finally {
    await peer.call('stop').catch(() => undefined);
    await peer.stop();
  }
}

async function bridgeGetBalanceSection(backend: 'postgres' | 'pglite', relay: { part: Part; url: string }, vaults: VaultsInfo): Promise<ServiceFigures> {
  const databaseUrl = backend === 'postgres' ? await createBenchDatabase('get_balance') : undefined;
  try {
    const bridge = await startBridgePart(relay.url, vaults, databaseUrl);
    try {
      const registered = await registerMany(bridge.url, CONFIG.clients);
      const clients = registered.map((r) => new LoadClient(relay.url, r.walletPubkey, r.secret));
      await connectAll(clients);
      if (databaseUrl) await analyzeBenchDatabase(databaseUrl);
      try {
        return await driveGetBalance(`bridge-${backend}`, clients, bridge.part, relay.part, databaseUrl);
      } finally {
        for (const c of clients) c.close();
      }
    } finally {
      await stopBridgePart(bridge.part);
    }
  } finally {
    if (databaseUrl) await dropBenchDatabase(databaseUrl);
  }
}

interface PayFigures {
  payers: number;
  payees: number;
  maxRate: ServiceFigures & { vaultsCpuMsPerRequest: number; cpuShare: { bridge: number; database: number; relay: number; vaults: number; loadgen: number } };
  halfRate: {
    targetRate: number;
    ok: number;
    errors: number;
    errorSamples: string[];
    throughput: number;
    p50: number;
    p99: number;
    /** Time inside the bridge (request received → response published), without the vault calls. */
    bridgeAddedP50: number;
    bridgeAddedP99: number;
    /** Of the bridge-added time, waiting on PostgreSQL. */
    databaseP50: number;
    databaseP99: number;
    vaultP50: number;
    vaultP99: number;
    /** Mean split of the end-to-end latency: bridge (without vaults), vaults, relay and transport. */
    split: { bridgeMs: number; databaseMs: number; vaultsMs: number; relayAndTransportMs: number };
  };
}

/** Payee users make invoices (1 sat each) through the bridge until `into` holds `count`. */
async function makeInvoices(payees: LoadClient[], count: number, into: string[]): Promise<void> {
  let inFlight = 0;
  let failures = 0;
  await Promise.all(
    payees.map(async (payee) => {
      while (into.length + inFlight < count) {
        inFlight++;
        try {
          const answer = await payee.request('make_invoice', { amount: 1_000, description: 'bench' });
          if (typeof answer.result?.invoice === 'string') into.push(answer.result.invoice);
          else if (++failures > 20) throw new Error(`make_invoice keeps failing: ${JSON.stringify(answer.error)}`);
        } finally {
          inFlight--;
        }
      }
    }),
  );
}

async function paySection(relay: { part: Part; url: string }, vaults: Part, vaultsInfo: VaultsInfo): Promise<PayFigures> {
  const databaseUrl = await createBenchDatabase('pay');
  try {
    const bridge = await startBridgePart(relay.url, vaultsInfo, databaseUrl);
    try {
      const payers = (await registerMany(bridge.url, CONFIG.payers)).map((r) => new LoadClient(relay.url, r.walletPubkey, r.secret));
      const payees = (await registerMany(bridge.url, CONFIG.payees)).map((r) => new LoadClient(relay.url, r.walletPubkey, r.secret));
      await connectAll([...payers, ...payees]);
      try {
        // Fund every payer from the devnet's outside payer, then wait for the credits.
        const fundMsat = 100_000_000;
        await Promise.all(
          payers.map(async (p) => {
            const made = await p.request('make_invoice', { amount: fundMsat, description: 'bench funding' });
            if (made.error || typeof made.result?.invoice !== 'string') throw new Error(`funding invoice: ${JSON.stringify(made.error)}`);
            await vaults.call('pay', { invoice: made.result.invoice });
            for (let i = 0; ; i++) {
              const b = await p.request('get_balance');
              if (typeof b.result?.balance === 'number' && b.result.balance >= fundMsat) break;
              if (i > 200) throw new Error('funding not credited');
              await sleep(50);
            }
          }),
        );
        // Invoices of the payee users, made through the bridge before the clock starts: a pilot
        // round first, whose rate sizes the stock for the timed runs (the bench has a time budget).
        const invoices: string[] = [];
        let nextInvoice = 0;
        const pay = () => (nextInvoice < invoices.length ? { method: 'pay_invoice', params: { invoice: invoices[nextInvoice++]! } } : null);
        await makeInvoices(payees, payers.length * 3, invoices);
        const pilot = await closedLoop(payers, 60_000, () => pay());
        const pilotRate = pilot.ok / (pilot.wallMs / 1000);
        const wanted = Math.min(CONFIG.maxPayments, Math.ceil(pilotRate * 1.5 * (CONFIG.payMs / 1000)) + payers.length);
        await makeInvoices(payees, nextInvoice + wanted, invoices);
        await analyzeBenchDatabase(databaseUrl);

        // Highest rate: every payer keeps one payment in flight.
        const sampler = cryptoSamplerFor(CONFIG.payMs);
        const [b0, r0, v0, d0] = await Promise.all([bridge.part.stats(), relay.part.stats(), vaults.stats(), serverCpuMs(databaseUrl)]);
        const l0 = ownStats();
        // Ends when the time is up or the stock of invoices runs out, whichever is first.
        const timed = await withCryptoBursts(sampler, () => profiled('payInvoice', [bridge.part, vaults, relay.part], () => closedLoop(payers, CONFIG.payMs, () => pay())));
        const max = timed.result;
        const l1 = ownStats();
        const [b1, r1, v1, d1] = await Promise.all([bridge.part.stats(), relay.part.stats(), vaults.stats(), serverCpuMs(databaseUrl)]);
        const base = {
          ...figures(payers.length, max, b0, b1, r0, r1, l0, l1, timed.cryptoCpuMs),
          databaseCpuMsPerRequest: perRequest(d0, d1, max.ok),
          concurrentCryptoCpuMsPerRequest: timed.cryptoCpuMsPerRequest,
        };
        const vaultsCpuMsPerRequest = cpuMs(v0, v1) / Math.max(1, max.ok);
        const database = base.databaseCpuMsPerRequest ?? 0;
        const total = base.cpuMsPerRequest + database + base.relayCpuMsPerRequest + vaultsCpuMsPerRequest + base.loadgenCpuMsPerRequest;

        // Half that rate, open loop, timing each request inside the bridge.
        const targetRate = Math.max(1, base.throughput / 2);
        const needed = Math.ceil((targetRate * CONFIG.halfRateMs) / 1000);
        if (invoices.length - nextInvoice < needed) await makeInvoices(payees, nextInvoice + needed, invoices);
        await bridge.part.call('timing', true);
        const half = await openLoop(payers, targetRate, CONFIG.halfRateMs, () => pay());
        const inside = await bridge.part.call<InsideTiming[]>('timing', false);
        const added = inside.map((t) => t.insideMs - t.vaultMs);
        const vaultMs = inside.map((t) => t.vaultMs);
        const databaseMs = inside.map((t) => t.databaseMs);
        const mean = (v: number[]) => (v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length);
        const e2e = mean(half.latencies);
        return {
          payers: payers.length,
          payees: payees.length,
          maxRate: {
            ...base,
            vaultsCpuMsPerRequest,
            cpuShare: {
              bridge: base.cpuMsPerRequest / total,
              database: database / total,
              relay: base.relayCpuMsPerRequest / total,
              vaults: vaultsCpuMsPerRequest / total,
              loadgen: base.loadgenCpuMsPerRequest / total,
            },
          },
          halfRate: {
            targetRate,
            ok: half.ok,
            errors: half.errors,
            errorSamples: half.errorSamples,
            throughput: half.ok / (half.wallMs / 1000),
            p50: percentile(half.latencies, 50),
            p99: percentile(half.latencies, 99),
            bridgeAddedP50: percentile(added, 50),
            bridgeAddedP99: percentile(added, 99),
            vaultP50: percentile(vaultMs, 50),
            vaultP99: percentile(vaultMs, 99),
            databaseP50: percentile(databaseMs, 50),
            databaseP99: percentile(databaseMs, 99),
            split: { bridgeMs: mean(added), databaseMs: mean(databaseMs), vaultsMs: mean(vaultMs), relayAndTransportMs: e2e - mean(added) - mean(vaultMs) },
          },
        };
      } finally {
        for (const c of [...payers, ...payees]) c.close();
      }
    } finally {
      await stopBridgePart(bridge.part);
    }
  } finally {
    await dropBenchDatabase(databaseUrl);
  }
}

interface ScaleRow {
  connections: number;
  startupMs: number;
  rssMb: number;
  /** The V8 heap in use (the rest of the RSS is code, WASM memory, buffers and freed pages not yet returned). */
  heapMb: number;
  heapTotalMb: number;
  /** Subscriptions the bridge holds on the relay (its socket's count). */
  subscriptionsPerRelay: number;
  getBalanceP50: number;
  getBalanceP95: number;
  errors: number;
}

async function scaleSection(vaultsInfo: VaultsInfo): Promise<ScaleRow[]> {
  const databaseUrl = await createBenchDatabase('scale');
  const relay = await startRelayPart();
  const rows: ScaleRow[] = [];
  try {
    // One registered connection to ask with; the rest are written straight into the database.
    const first = await startBridgePart(relay.url, vaultsInfo, databaseUrl);
    let registered: Registered;
    try {
      registered = await registerConnection(first.url);
    } finally {
      await stopBridgePart(first.part);
    }
    const { db } = await openDatabase({ databaseUrl });
    let present = 1;
    try {
      for (const size of CONFIG.scaleSizes) {
        await insertConnections(db, size - present);
        present = size;
        const bridge = await startBridgePart(relay.url, vaultsInfo, databaseUrl);
        try {
          // Counted while the bridge is the relay's only client.
          const counts = await relay.part.call<number[]>('subscriptionCounts');
          const client = new LoadClient(relay.url, registered.walletPubkey, registered.secret);
          await client.connect();
          try {
            const latencies: number[] = [];
            let errors = 0;
            // Ten first, not counted: the connection's keys and the bridge's caches warm up.
            for (let i = 0; i < CONFIG.scaleRequests + 10; i++) {
              const answer = await client.request('get_balance').catch((e: unknown) => e as Error);
              if (answer instanceof Error || answer.error) errors++;
              else if (i >= 10) latencies.push(answer.latencyMs);
            }
            const stats = await bridge.part.stats();
            rows.push({
              connections: size,
              startupMs: bridge.startupMs,
              rssMb: mb(stats.rss),
              heapMb: mb(stats.heapUsed),
              heapTotalMb: mb(stats.heapTotal),
              subscriptionsPerRelay: Math.max(0, ...counts),
              getBalanceP50: percentile(latencies, 50),
              getBalanceP95: percentile(latencies, 95),
              errors,
            });
          } finally {
            client.close();
          }
        } finally {
          await stopBridgePart(bridge.part);
        }
      }
    } finally {
      await db.destroy();
    }
  } finally {
    await relay.part.stop();
    await dropBenchDatabase(databaseUrl);
  }
  return rows;
}

// ——— main ———

async function main(): Promise<void> {
  const t0 = performance.now();
  if (!(await postgresReachable())) throw new Error('PostgreSQL is not reachable (BENCH_DATABASE_URL / TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test)');
  const want = (s: string) => !only || only.includes(s);
  const results: Results = {
    date: new Date().toISOString(),
    mode: smoke ? 'smoke' : 'full',
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, schnorr: schnorrBackend, loadavg: os.loadavg() },
    config: CONFIG,
    sections: {},
    errors: {},
  };
  const section = async <T>(name: string, run: () => Promise<T>): Promise<void> => {
    if (!want(name)) return;
    const s0 = performance.now();
    process.stderr.write(`bench: ${name}…\n`);
    try {
      (results.sections as Record<string, unknown>)[name] = await run();
    } catch (error) {
      results.errors[name] = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`bench: ${name} failed: ${results.errors[name]}\n`);
    }
    process.stderr.write(`bench: ${name} took ${((performance.now() - s0) / 1000).toFixed(1)} s\n`);
  };

  await section('crypto', async (): Promise<CryptoLimit> => measureCryptoLimit(CONFIG.cryptoIterations));
  const relay = await startRelayPart();
  const vaults = new Part('vaults', 'vaults.ts');
  try {
    const vaultsInfo = await vaults.call<VaultsInfo>('start', { operators: 3 });
    await section('peer', () => peerSection(relay));
    await section('bridgePostgres', () => bridgeGetBalanceSection('postgres', relay, vaultsInfo));
    await section('bridgePglite', () => bridgeGetBalanceSection('pglite', relay, vaultsInfo));
    await section('scale', () => scaleSection(vaultsInfo));
    await section('payInvoice', () => paySection(relay, vaults, vaultsInfo));
  } finally {
    await relay.part.stop();
    await vaults.stop();
  }
  results.totalSeconds = (performance.now() - t0) / 1000;
  results.ratios = ratios(results);
  const out = path.join(import.meta.dirname, smoke ? 'results.smoke.json' : 'results.json');
  if (!only) writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
  printReport(results);
  if (!only) process.stdout.write(`\nwritten to ${path.relative(process.cwd(), out)} in ${results.totalSeconds.toFixed(0)} s\n`);
  // No thresholds on the figures, but a bench that no longer runs must not pass unnoticed.
  const broken = [...Object.keys(results.errors), ...unanswered(results)];
  if (broken.length > 0) {
    process.stderr.write(`bench: broken sections: ${broken.join(', ')}\n`);
    process.exitCode = 1;
  }
}

/** Sections in which not one request was answered without an error. */
function unanswered(r: Results): string[] {
  const out: string[] = [];
  for (const [name, figures] of Object.entries({ peer: r.sections.peer, bridgePostgres: r.sections.bridgePostgres, bridgePglite: r.sections.bridgePglite })) {
    if (figures && figures.ok === 0) out.push(name);
  }
  if (r.sections.payInvoice && (r.sections.payInvoice.maxRate.ok === 0 || r.sections.payInvoice.halfRate.ok === 0)) out.push('payInvoice');
  if (r.sections.scale?.some((row) => row.errors > 0 || !Number.isFinite(row.getBalanceP50))) out.push('scale');
  return out;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
