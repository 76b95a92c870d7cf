/**
 * The devnet's auditor: probes each operator on an interval (is /v0/info up, fast, and
 * consistent; what reserve does /v0/metrics report) and at the end of each window signs one
 * report per operator (src/protocol/auditor-report.ts). Serves them on the auditor API.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { signAuditorReport, type AuditorReportContent } from '../protocol/auditor-report.ts';
import { bytesToHex, compressedPubkeyHex, hexToBytes } from '../protocol/hex.ts';
import { httpAuthHeader } from '../protocol/nip98.ts';
import { nostrEventSchema, publicKeyOf } from '../protocol/nostr-event.ts';
import { vaultInfoSchema, vaultMetricsSchema } from '../protocol/vault-api.ts';
import { vaultMultisigPubkey } from '../protocol/vault-proof.ts';
import { silentLogger, type Logger } from '../log.ts';
import { createApp, listen, parseWith, sendError, sendJson } from './http.ts';
import { openDatabase, text } from './sqlite.ts';

export interface AuditedOperator {
  url: string;
  /** The node key the auditor expects the operator to report. */
  nodePubkey: string;
}

export interface AuditorOptions {
  /** SQLite file for the auditor's key and reports; null keeps them in memory. */
  dbPath: string | null;
  /** Time between probe rounds (default 10 s). */
  intervalMs?: number;
  /** Length of a report window (default 10 minutes). */
  windowMs?: number;
  /** Timeout of one probe (default 5 s). */
  probeTimeoutMs?: number;
  logger?: Logger;
}

interface Sample {
  up: boolean;
  latencyMs: number;
  /** /v0/info was well-formed, named the expected node, and its vault key derives from both peers. */
  correct: boolean;
  integrityIncident: boolean;
  reservePpm: number | null;
}

const RESERVE_RATIO_CAP_PPM = 10_000_000;

export class DevnetAuditor {
  readonly pubkey: string;
  readonly #secretKey: Uint8Array;
  readonly #db: DatabaseSync;
  readonly #intervalMs: number;
  readonly #windowMs: number;
  readonly #probeTimeoutMs: number;
  readonly #log: Logger;
  #operators: AuditedOperator[] = [];
  #samples = new Map<string, Sample[]>();
  #windowStartMs = 0;
  #stopper: AbortController | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: AuditorOptions) {
    this.#db = openDatabase(options.dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS auditor_key (id INTEGER PRIMARY KEY CHECK (id = 1), secret TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS reports (
        operator TEXT NOT NULL,
        window_start_ms INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (operator, window_start_ms)
      ) STRICT;
    `);
    this.#db.prepare('INSERT OR IGNORE INTO auditor_key (id, secret) VALUES (1, ?)').run(bytesToHex(secp256k1.utils.randomSecretKey()));
    const row = this.#db.prepare('SELECT secret FROM auditor_key WHERE id = 1').get();
    if (!row) throw new Error('auditor key missing');
    this.#secretKey = hexToBytes(text(row, 'secret'));
    this.pubkey = publicKeyOf(this.#secretKey);
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#windowMs = options.windowMs ?? 600_000;
    this.#probeTimeoutMs = options.probeTimeoutMs ?? 5_000;
    this.#log = (options.logger ?? silentLogger).child({ component: 'auditor' });
  }

  /** Starts probing these operators; the first window begins now. */
  start(operators: AuditedOperator[]): void {
    if (this.#loop) throw new Error('auditor already started');
    this.#operators = operators;
    this.#windowStartMs = Date.now();
    this.#stopper = new AbortController();
    const signal = this.#stopper.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        await Promise.all(this.#operators.map((op) => this.#probe(op, signal)));
        if (Date.now() - this.#windowStartMs >= this.#windowMs) this.#closeWindow();
        await sleep(this.#intervalMs, undefined, { signal }).catch(() => undefined);
      }
    })();
  }

  /** Stops probing; the unfinished window is dropped, not reported. */
  async stop(): Promise<void> {
    this.#stopper?.abort();
    await this.#loop;
    this.#loop = null;
  }

  close(): void {
    this.#db.close();
  }

  /** Signed reports on `operator` whose window ended at or after `sinceSec`, oldest first. */
  reports(operator: string, sinceSec: number): Event[] {
    const rows = this.#db.prepare('SELECT event FROM reports WHERE operator = ? AND created_at >= ? ORDER BY window_start_ms').all(operator, sinceSec);
    return rows.map((row) => nostrEventSchema.parse(JSON.parse(text(row, 'event'))));
  }

  async #probe(op: AuditedOperator, signal: AbortSignal): Promise<void> {
    const sample: Sample = { up: false, latencyMs: 0, correct: false, integrityIncident: false, reservePpm: null };
    const started = performance.now();
    const info = await this.#fetchJson(op.url, '/v0/info', signal);
    sample.latencyMs = Math.round(performance.now() - started);
    if (signal.aborted) return;
    if (info !== null) {
      sample.up = true;
      const parsed = vaultInfoSchema.safeParse(info);
      if (parsed.success) {
        const { operator, peer, vaults } = parsed.data;
        const keysHold = vaults.every((v) => vaultMultisigPubkey(operator.node_pubkey, peer.node_pubkey, v.channel_id, v.vault_id) === v.multisig_pubkey);
        sample.integrityIncident = !keysHold || operator.node_pubkey !== op.nodePubkey;
        sample.correct = !sample.integrityIncident;
      }
      const metrics = vaultMetricsSchema.safeParse(await this.#fetchJson(op.url, '/v0/metrics', signal));
      if (metrics.success) {
        const { reserve_msat: reserve, total_balance_msat: total } = metrics.data;
        const ratio = total === 0n ? 1_000_000n : (reserve * 1_000_000n) / total;
        sample.reservePpm = Number(ratio > BigInt(RESERVE_RATIO_CAP_PPM) ? BigInt(RESERVE_RATIO_CAP_PPM) : ratio);
      }
    }
    const list = this.#samples.get(op.nodePubkey) ?? [];
    list.push(sample);
    this.#samples.set(op.nodePubkey, list);
  }

  /** GETs a JSON document with NIP-98 auth; null when the operator did not answer 200 with JSON. */
  async #fetchJson(base: string, path: string, signal: AbortSignal): Promise<unknown> {
    const url = base + path;
    try {
      const response = await fetch(url, {
        headers: { authorization: httpAuthHeader(this.#secretKey, url, 'GET') },
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#probeTimeoutMs)]),
      });
      if (!response.ok) {
        await response.body?.cancel();
        return null;
      }
      return await response.json();
    } catch {
      return null;
    }
  }

  #closeWindow(): void {
    const startMs = this.#windowStartMs;
    const endMs = Date.now();
    this.#windowStartMs = endMs;
    const samples = this.#samples;
    this.#samples = new Map();
    for (const op of this.#operators) {
      const list = samples.get(op.nodePubkey) ?? [];
      if (list.length === 0) continue;
      const content = summarize(op.nodePubkey, list, Math.floor(startMs / 1000), Math.floor(endMs / 1000));
      const event = signAuditorReport(content, this.#secretKey);
      this.#db
        .prepare('INSERT OR REPLACE INTO reports (operator, window_start_ms, created_at, event) VALUES (?, ?, ?, ?)')
        .run(op.nodePubkey, startMs, event.created_at, JSON.stringify(event));
      this.#log.info({ operator: op.nodePubkey, uptime_ppm: content.uptime_ppm, reserve_ratio_ppm: content.reserve_ratio_ppm }, 'audit report signed');
    }
  }
}

function summarize(operator: string, samples: Sample[], windowStart: number, windowEnd: number): AuditorReportContent {
  const up = samples.filter((s) => s.up);
  const latencies = up.map((s) => s.latencyMs).sort((a, b) => a - b);
  const percentile = (p: number) => (latencies.length === 0 ? 0 : (latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0));
  const reserves = samples.flatMap((s) => (s.reservePpm === null ? [] : [s.reservePpm]));
  return {
    operator,
    window_start: windowStart,
    window_end: windowEnd,
    samples: samples.length,
    uptime_ppm: Math.floor((up.length * 1_000_000) / samples.length),
    correctness_ppm: up.length === 0 ? 0 : Math.floor((up.filter((s) => s.correct).length * 1_000_000) / up.length),
    latency_p50_ms: percentile(50),
    latency_p95_ms: percentile(95),
    // The worst reserve seen in the window: a shortfall for one sample is a shortfall.
    reserve_ratio_ppm: reserves.length === 0 ? null : Math.min(...reserves),
    integrity_incidents: samples.filter((s) => s.integrityIncident).length,
  };
}

export interface AuditorServer {
  readonly url: string;
  close(): Promise<void>;
}

const reportsParams = z.object({ operator_pubkey: compressedPubkeyHex });
const reportsQuery = z.object({ since: z.string().regex(/^[0-9]{1,12}$/, 'expected unix seconds').optional() });

/** Serves `GET /v0/reports/:operator_pubkey?since=<unix>` → `{"reports": [...]}`. */
export async function startAuditorServer(auditor: DevnetAuditor, host: string, port: number, logger: Logger = silentLogger): Promise<AuditorServer> {
  const app = createApp(logger);
  app.get('/v0/reports/:operator_pubkey', async (request, reply) => {
    const params = parseWith(request.params, reportsParams, 'path');
    if (!params.ok) return sendError(reply, 400, 'BAD_REQUEST', params.error.message);
    const query = parseWith(request.query, reportsQuery, 'query');
    if (!query.ok) return sendError(reply, 400, 'BAD_REQUEST', query.error.message);
    return sendJson(reply, 200, { reports: auditor.reports(params.value.operator_pubkey, Number(query.value.since ?? '0')) });
  });
  const url = await listen(app, host, port);
  return { url, close: () => app.close() };
}
