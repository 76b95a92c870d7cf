import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/database.ts';
import type { DepositReconciliation } from '../deposits/reconcile.ts';
import type { KnownOperator } from '../deposits/operators.ts';

/**
 * NIP-47 error codes that mean "refused by a rule" (authorization, limits, freshness), as opposed
 * to a failure of the bridge or of a payment. Counted by reason in
 * `deposit_bridge_refused_authorizations_total`.
 */
export const REFUSAL_CODES: ReadonlySet<string> = new Set([
  'UNAUTHORIZED',
  'RESTRICTED',
  'QUOTA_EXCEEDED',
  'RATE_LIMITED',
  'EXPIRED',
  'FEE_LIMIT_EXCEEDED',
  'INSUFFICIENT_BALANCE',
  'UNSUPPORTED_ENCRYPTION',
]);

/** What the metrics read when scraped: the database and the operators this instance knows. */
export interface MetricsSources {
  db: Db;
  operators: () => readonly Pick<KnownOperator, 'name' | 'nodePubkey' | 'available' | 'score'>[];
}

export interface BridgeMetricsOptions {
  /** Also export the process's CPU, memory, event loop and GC metrics (one bridge per process). */
  processMetrics?: boolean;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The Prometheus metrics of one bridge instance, in its own registry (never the global one), so
 * several bridges in one process keep separate counts. Labels are bounded: a method the bridge
 * does not serve is counted as `unknown`, an outcome is `success` or a NIP-47 error code.
 */
export class BridgeMetrics {
  readonly registry = new Registry();
  readonly #knownMethods: ReadonlySet<string>;
  #sources: MetricsSources | undefined;

  readonly #requests = new Counter({
    name: 'deposit_bridge_nwc_requests_total',
    help: 'NIP-47 requests answered, by method and outcome (success or the NIP-47 error code)',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'deposit_bridge_nwc_request_duration_seconds',
    help: 'Time from receiving a NIP-47 request to publishing its response, by method',
    labelNames: ['method'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: 'deposit_bridge_refused_authorizations_total',
    help: 'NIP-47 requests refused by an authorization rule or limit, by reason (the NIP-47 error code)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly #reconcileDifferences = new Gauge({
    name: 'deposit_bridge_reconciliation_differences',
    help: 'Deposits whose journal differs from the balance their vault signed, at the last reconciliation run by this instance',
    registers: [this.registry],
  });
  readonly #reconcileDeposits = new Gauge({
    name: 'deposit_bridge_reconciliation_deposits',
    help: 'Deposits at the last reconciliation run by this instance, by status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly #reconcileRuns = new Counter({
    name: 'deposit_bridge_reconciliation_runs_total',
    help: 'Reconciliation runs by this instance',
    registers: [this.registry],
  });
  readonly #jobRuns = new Counter({
    name: 'deposit_bridge_job_runs_total',
    help: 'Background job runs by this instance, by job and outcome (ok, failed)',
    labelNames: ['job', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly #leader = new Gauge({
    name: 'deposit_bridge_job_leader',
    help: '1 while this instance runs the background jobs (holds the job lock), else 0',
    registers: [this.registry],
  });

  constructor(knownMethods: Iterable<string>, options: BridgeMetricsOptions = {}) {
    this.#knownMethods = new Set(knownMethods);
    const sources = () => this.#sources;
    new Gauge({
      name: 'deposit_bridge_payments_in_flight',
      help: 'Outgoing payments not yet final (reserved or sent, waiting for the vault), across all instances',
      registers: [this.registry],
      async collect() {
        const s = sources();
        if (!s) return;
        const row = await s.db
          .selectFrom('transactions')
          .select((eb) => eb.fn.countAll<bigint>().as('n'))
          .where('type', '=', 'outgoing')
          .where('state', '=', 'pending')
          .executeTakeFirstOrThrow();
        this.set(Number(row.n));
      },
    });
    new Gauge({
      name: 'deposit_bridge_operator_available',
      help: 'Whether the last call of this instance reached the vault operator (1) or not (0)',
      labelNames: ['operator', 'node_pubkey'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const op of sources()?.operators() ?? []) this.set({ operator: op.name, node_pubkey: op.nodePubkey }, op.available ? 1 : 0);
      },
    });
    new Gauge({
      name: 'deposit_bridge_operator_score',
      help: "The vault operator's score (0..1) from auditor reports and the bridge's incidents",
      labelNames: ['operator', 'node_pubkey'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const op of sources()?.operators() ?? []) this.set({ operator: op.name, node_pubkey: op.nodePubkey }, op.score);
      },
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'deposit_bridge_' });
  }

  /** Connects the gauges read at scrape time to a running bridge. */
  attach(sources: MetricsSources): void {
    this.#sources = sources;
  }

  /** A NIP-47 response was published: `errorCode` null for a result. */
  requestAnswered(method: string, errorCode: string | null, seconds: number): void {
    const label = this.#knownMethods.has(method) ? method : 'unknown';
    this.#requests.inc({ method: label, outcome: errorCode ?? 'success' });
    this.#latency.observe({ method: label }, seconds);
    if (errorCode !== null && REFUSAL_CODES.has(errorCode)) this.#refused.inc({ reason: errorCode });
  }

  reconciled(results: readonly Pick<DepositReconciliation, 'status'>[]): void {
    this.#reconcileRuns.inc();
    this.#reconcileDeposits.reset();
    for (const r of results) this.#reconcileDeposits.inc({ status: r.status });
    this.#reconcileDifferences.set(results.filter((r) => r.status === 'differs').length);
  }

  jobRan(job: string, outcome: 'ok' | 'failed'): void {
    this.#jobRuns.inc({ job, outcome });
  }

  leading(isLeader: boolean): void {
    this.#leader.set(isLeader ? 1 : 0);
  }

  /** The text exposition format, and its content type. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
