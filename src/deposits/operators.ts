import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { INTEGRITY_INCIDENTS } from '../db/schema.ts';
import type { BitcoinNetwork } from '../protocol/invoice.ts';
import type { VaultInfo } from '../protocol/vault-api.ts';
import type { AuditorReport } from '../protocol/auditor-report.ts';
import { VaultError, type VaultClient } from '../vault-client/vault-client.ts';
import { sql } from 'kysely';
import { PRIOR_SCORE, REPORT_RETENTION_SECONDS, scoreOperator, SLOW_CALL_MS, type AttributedReport, type ScoreDetail } from './reputation.ts';

export interface OperatorEntry {
  name: string;
  url: string;
  /** A pin: the node key the operator must report in /v0/info. */
  nodePubkey?: string | undefined;
}

export interface AuditorSource {
  pubkey: string;
  /** Verified reports about one operator since a time, signed by this auditor. */
  reports(operatorPubkey: string, sinceSec: number): Promise<AuditorReport[]>;
}

export interface KnownOperator {
  nodePubkey: string;
  peerNodePubkey: string;
  name: string;
  url: string;
  network: BitcoinNetwork;
  client: VaultClient;
  info: VaultInfo;
  score: number;
  scoreReasons: string[];
  /** Every figure the score came from, once this instance computed it. */
  scoreDetail?: ScoreDetail;
  /** The bridge's own observation: did the last call reach it. */
  available: boolean;
  /**
   * Removed from the configured operators while running (`reload`): nothing new goes there (no
   * deposit, invoice or transfer into it; its score reads 0), but it stays known, so payments in
   * flight there finish and the money it holds, still its users', shows and can be spent.
   */
  retired?: boolean;
}

/** What `OperatorDirectory.reload` changed. */
export interface OperatorReload {
  /** Entries new in the list: connected, or retried in the background when they did not answer. */
  added: OperatorEntry[];
  /** Entries gone from the list, with the node key each was connected as (null: it never was). */
  removed: { entry: OperatorEntry; nodePubkey: string | null }[];
}

/** Why a removed operator's score reads 0; users see it beside their balance there. */
export const RETIRED_REASON = "removed from this bridge's vaults file: nothing new goes there; what it holds is still yours and can be spent";

/** One configured entry: any changed field (name, URL, pin…) makes another entry (a removal plus an addition). */
function entryKey(entry: OperatorEntry): string {
  return JSON.stringify(Object.entries(entry).filter(([, v]) => v !== undefined).sort(([x], [y]) => (x < y ? -1 : 1)));
}

/** The calls that would put new money at an operator. */
const NEW_MONEY_CALLS: ReadonlySet<PropertyKey> = new Set(['openDeposit', 'createInvoice', 'createHoldInvoice']);

/**
 * The client of a removed operator: every call as before except those putting new money there,
 * refused locally (RESTRICTED), whichever code path would have chosen it.
 */
function refusingNewMoney(client: VaultClient, name: string): VaultClient {
  return new Proxy(client, {
    get(target, prop) {
      if (NEW_MONEY_CALLS.has(prop)) {
        return () => Promise.reject(new VaultError('RESTRICTED', `vault operator ${name} was removed from the vaults file: no new deposits or invoices there`));
      }
      const value: unknown = Reflect.get(target, prop, target);
      // Bound to the real client: its methods use private fields.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * The vault operators this bridge works with: their clients, what they said about themselves,
 * their score, and whether they answer.
 */
export class OperatorDirectory {
  readonly #db: Db;
  readonly #createClient: (url: string) => VaultClient;
  readonly #logger: Logger;
  readonly #operators = new Map<string, KnownOperator>();
  readonly #pending = new Map<string, OperatorEntry>();
  /** The entries the bridge is configured with, by `entryKey`. */
  readonly #configured = new Map<string, OperatorEntry>();
  /** Operators removed while running, kept for what is already there (see `KnownOperator.retired`). */
  readonly #retired = new Map<string, KnownOperator>();
  readonly #onConnect: Array<(nodePubkey: string) => void> = [];
  readonly #onRetire: Array<(nodePubkey: string) => void> = [];
  /** Calls to each operator URL not yet written to operator_observations, per hour. */
  readonly #calls = new Map<string, { hourStartSec: number; calls: number; failures: number; slowCalls: number; latencyMs: number }>();
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(db: Db, createClient: (url: string) => VaultClient, logger: Logger) {
    this.#db = db;
    this.#createClient = createClient;
    this.#logger = logger;
  }

  /** Learns each operator from its /v0/info; one that does not answer is retried in the background. */
  async connect(entries: readonly OperatorEntry[]): Promise<void> {
    for (const entry of entries) this.#configured.set(entryKey(entry), entry);
    await Promise.all(entries.map((entry) => this.#connectOne(entry)));
    if (this.#pending.size > 0) this.#scheduleRetry();
  }

  /**
   * Makes `entries` the configured operators (the vaults file was edited): a new entry is
   * connected (`onConnect` then fires), a removed one is retired at once (`onRetire` fires; see
   * `KnownOperator.retired`). A changed URL or pin under the same name is a removal plus an
   * addition. Removals are applied before additions, so an operator that only moved (same node,
   * new URL) ends up active with its new client.
   */
  async reload(entries: readonly OperatorEntry[]): Promise<OperatorReload> {
    const wanted = new Map(entries.map((entry) => [entryKey(entry), entry]));
    const removed: OperatorReload['removed'] = [];
    for (const [key, entry] of this.#configured) {
      if (wanted.has(key)) continue;
      this.#configured.delete(key);
      this.#pending.delete(entry.url);
      removed.push({ entry, nodePubkey: this.#retire(entry) });
    }
    const added = [...wanted].filter(([key]) => !this.#configured.has(key)).map(([, entry]) => entry);
    for (const entry of added) this.#configured.set(entryKey(entry), entry);
    const outcomes = await Promise.allSettled(added.map((entry) => this.#connectOne(entry)));
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') return;
      // A failure of the bridge's own (e.g. its database): tried again with the unreachable ones.
      const entry = added[i]!;
      this.#logger.error({ operator: entry.name, err: outcome.reason }, 'could not add a vault operator; will retry');
      if (this.#configured.has(entryKey(entry))) this.#pending.set(entry.url, entry);
    });
    if (this.#pending.size > 0) this.#scheduleRetry();
    return { added, removed };
  }

  /** Retires the operator connected under `entry`; its node key, or null when none was. */
  #retire(entry: OperatorEntry): string | null {
    const op = [...this.#operators.values()].find((o) => o.name === entry.name && o.url === entry.url);
    if (!op) return null;
    this.#operators.delete(op.nodePubkey);
    op.retired = true;
    op.score = 0;
    op.scoreReasons = [RETIRED_REASON];
    op.client = refusingNewMoney(op.client, op.name);
    this.#retired.set(op.nodePubkey, op);
    this.#logger.warn(
      { operator: op.name, nodePubkey: op.nodePubkey },
      "vault operator removed: no new deposits, invoices or transfers go there; payments in flight there are finished, and the money it holds is still its users' (shown in balances, spendable)",
    );
    for (const listener of this.#onRetire) listener(op.nodePubkey);
    return op.nodePubkey;
  }

  /** Called with an operator's node key when it is removed while running. */
  onRetire(listener: (nodePubkey: string) => void): void {
    this.#onRetire.push(listener);
  }

  async #connectOne(entry: OperatorEntry): Promise<void> {
    const client = this.#createClient(entry.url);
    let info: VaultInfo;
    try {
      info = await client.info();
    } catch (error) {
      if (!this.#configured.has(entryKey(entry))) return;
      this.#logger.warn({ operator: entry.name, url: entry.url, err: error }, 'vault operator not reachable; will retry');
      this.#pending.set(entry.url, entry);
      return;
    }
    if (entry.nodePubkey && entry.nodePubkey !== info.operator.node_pubkey) {
      this.#logger.error({ operator: entry.name, expected: entry.nodePubkey, got: info.operator.node_pubkey }, 'vault operator node key does not match its pin; not used');
      return;
    }
    const known = this.network();
    if (known && known !== info.network) {
      this.#logger.error({ operator: entry.name, network: info.network, expected: known }, 'vault operator on another network; not used');
      return;
    }
    this.#pending.delete(entry.url);
    const nodePubkey = info.operator.node_pubkey;
    const row = await this.#db
      .insertInto('vault_operators')
      .values({
        node_pubkey: nodePubkey,
        name: entry.name,
        url: entry.url,
        peer_node_pubkey: info.peer.node_pubkey,
        network: info.network,
        info: JSON.stringify(info, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
        score: PRIOR_SCORE,
        score_reasons: JSON.stringify([`no auditor report yet: new-operator prior ${PRIOR_SCORE}`]),
        events_cursor: 0n,
        available: true,
        last_seen_at: new Date(),
      })
      .onConflict((oc) =>
        oc.column('node_pubkey').doUpdateSet((eb) => ({
          name: eb.ref('excluded.name'),
          url: eb.ref('excluded.url'),
          peer_node_pubkey: eb.ref('excluded.peer_node_pubkey'),
          info: eb.ref('excluded.info'),
          available: true,
          last_seen_at: new Date(),
          updated_at: new Date(),
        })),
      )
      .returning(['score', 'score_reasons'])
      .executeTakeFirstOrThrow();
    // Removed from the configuration while its answer was awaited.
    if (!this.#configured.has(entryKey(entry))) return;
    this.#retired.delete(nodePubkey);
    this.#operators.set(nodePubkey, {
      nodePubkey,
      peerNodePubkey: info.peer.node_pubkey,
      name: entry.name,
      url: entry.url,
      network: info.network,
      client,
      info,
      score: row.score,
      scoreReasons: row.score_reasons,
      available: true,
    });
    this.#logger.info({ operator: entry.name, nodePubkey }, 'vault operator connected');
    for (const listener of this.#onConnect) listener(nodePubkey);
  }

  /** Called with each operator's node key once it is connected. */
  onConnect(listener: (nodePubkey: string) => void): void {
    this.#onConnect.push(listener);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.connect([...this.#pending.values()]);
    }, 10_000);
    this.#retryTimer.unref();
  }

  /** An operator in use or removed while running (`retired`): what is already there still needs it. */
  get(nodePubkey: string): KnownOperator | undefined {
    return this.#operators.get(nodePubkey) ?? this.#retired.get(nodePubkey);
  }

  /** The operators in use: those removed while running are not among them. */
  all(): KnownOperator[] {
    return [...this.#operators.values()];
  }

  /** The operators removed while running. */
  retired(): KnownOperator[] {
    return [...this.#retired.values()];
  }

  /** The Bitcoin network of the operators (they must all agree), or undefined before any answered. */
  network(): BitcoinNetwork | undefined {
    return (this.#operators.values().next().value ?? this.#retired.values().next().value)?.network;
  }

  /** Records the bridge's own observation of an operator. */
  observe(nodePubkey: string, reachable: boolean): void {
    const op = this.get(nodePubkey);
    if (!op || op.available === reachable) return;
    op.available = reachable;
    this.#logger.warn({ operator: op.name, reachable }, 'vault operator availability changed');
    void this.#db
      .updateTable('vault_operators')
      .set({ available: reachable, ...(reachable ? { last_seen_at: new Date() } : {}), updated_at: new Date() })
      .where('node_pubkey', '=', nodePubkey)
      .execute()
      .catch((err: unknown) => this.#logger.error({ err }, 'could not record operator availability'));
  }

  /** Asks each operator marked unavailable whether it answers again. */
  async probeUnavailable(): Promise<void> {
    await Promise.all(
      [...this.#operators.values(), ...this.#retired.values()]
        .filter((op) => !op.available)
        .map(async (op) => {
          try {
            await op.client.info();
            this.observe(op.nodePubkey, true);
          } catch {
            // still unavailable
          }
        }),
    );
  }

  /** Counts one Vault API call (the HTTP client reports each) towards the bridge's own observations. */
  recordCall(url: string, outcome: { answered: boolean; latencyMs: number }, nowSec = Math.floor(Date.now() / 1000)): void {
    const hourStartSec = nowSec - (nowSec % 3600);
    const key = `${hourStartSec} ${url}`;
    const tally = this.#calls.get(key) ?? { hourStartSec, calls: 0, failures: 0, slowCalls: 0, latencyMs: 0 };
    tally.calls += 1;
    if (!outcome.answered) tally.failures += 1;
    if (outcome.latencyMs > SLOW_CALL_MS) tally.slowCalls += 1;
    tally.latencyMs += outcome.latencyMs;
    this.#calls.set(key, tally);
  }

  /** Adds the calls counted since the last flush to operator_observations. */
  async flushObservations(): Promise<void> {
    const byUrl = new Map([...this.#retired.values(), ...this.#operators.values()].map((op) => [op.url, op.nodePubkey]));
    const tallies = [...this.#calls.entries()];
    this.#calls.clear();
    for (const [key, t] of tallies) {
      const nodePubkey = byUrl.get(key.slice(key.indexOf(' ') + 1));
      if (!nodePubkey) continue;
      await this.#db
        .insertInto('operator_observations')
        .values({ operator_pubkey: nodePubkey, hour_start: new Date(t.hourStartSec * 1000), calls: t.calls, failures: t.failures, slow_calls: t.slowCalls, latency_ms_total: BigInt(t.latencyMs) })
        .onConflict((oc) =>
          oc.columns(['operator_pubkey', 'hour_start']).doUpdateSet({
            calls: sql<number>`operator_observations.calls + excluded.calls`,
            failures: sql<number>`operator_observations.failures + excluded.failures`,
            slow_calls: sql<number>`operator_observations.slow_calls + excluded.slow_calls`,
            latency_ms_total: sql<bigint>`operator_observations.latency_ms_total + excluded.latency_ms_total`,
          }),
        )
        .execute();
    }
  }

  /**
   * Fetches the auditors' new reports (each kept 90 days), writes down the bridge's own
   * observations, and recomputes every operator's score from all of it.
   */
  async refreshScores(auditors: readonly AuditorSource[], nowSec: number): Promise<void> {
    const horizon = nowSec - REPORT_RETENTION_SECONDS;
    for (const op of this.#operators.values()) {
      for (const auditor of auditors) {
        const last = await this.#db
          .selectFrom('auditor_reports')
          .select((eb) => eb.fn.max('window_end').as('last'))
          .where('auditor_pubkey', '=', auditor.pubkey)
          .where('operator_pubkey', '=', op.nodePubkey)
          .executeTakeFirst();
        try {
          const reports = await auditor.reports(op.nodePubkey, Math.max(horizon, Number(last?.last ?? 0)));
          if (reports.length === 0) continue;
          await this.#db
            .insertInto('auditor_reports')
            .values(
              reports.map((r) => {
                const { event, auditor: signer, ...content } = r;
                return {
                  auditor_pubkey: signer,
                  operator_pubkey: op.nodePubkey,
                  window_start: BigInt(content.window_start),
                  window_end: BigInt(content.window_end),
                  content: JSON.stringify(content),
                  event: JSON.stringify(event),
                };
              }),
            )
            .onConflict((oc) => oc.constraint('auditor_reports_once').doNothing())
            .execute();
        } catch (error) {
          this.#logger.warn({ auditor: auditor.pubkey, err: error }, 'auditor not reachable');
        }
      }
    }
    await this.#db.deleteFrom('auditor_reports').where('window_end', '<=', BigInt(horizon)).execute();
    await this.#db.deleteFrom('operator_observations').where('hour_start', '<=', new Date(horizon * 1000)).execute();
    await this.flushObservations();
    for (const op of this.#operators.values()) await this.#applyScore(op, nowSec);
  }

  /** Lowers an operator's score at once after the bridge caught it misbehaving. */
  async noteIncident(nodePubkey: string): Promise<void> {
    const op = this.#operators.get(nodePubkey);
    if (op) await this.#applyScore(op, Math.floor(Date.now() / 1000));
  }

  /** The score from stored reports, the bridge's observations and its incident record (docs/reputation.md). */
  async #applyScore(op: KnownOperator, nowSec: number): Promise<void> {
    const horizon = nowSec - REPORT_RETENTION_SECONDS;
    const reports = await this.#db
      .selectFrom('auditor_reports')
      .select(['auditor_pubkey', 'content'])
      .where('operator_pubkey', '=', op.nodePubkey)
      .where('window_end', '>', BigInt(horizon))
      .execute();
    const observations = await this.#db
      .selectFrom('operator_observations')
      .select(['hour_start', 'calls', 'failures', 'slow_calls'])
      .where('operator_pubkey', '=', op.nodePubkey)
      .where('hour_start', '>', new Date(horizon * 1000))
      .execute();
    const counts = await this.#db
      .selectFrom('operator_incidents')
      .select([(eb) => eb.fn.countAll<bigint>().as('all'), (eb) => eb.fn.countAll<bigint>().filterWhere('kind', 'in', [...INTEGRITY_INCIDENTS]).as('integrity')])
      .where('operator_pubkey', '=', op.nodePubkey)
      .where('created_at', '>=', new Date(horizon * 1000))
      .executeTakeFirstOrThrow();
    const detail = scoreOperator({
      reports: reports.map((r) => ({ ...(r.content as Omit<AttributedReport, 'auditor'>), auditor: r.auditor_pubkey })),
      observations: observations.map((o) => ({ hourStartSec: Math.floor(o.hour_start.getTime() / 1000), calls: o.calls, failures: o.failures, slowCalls: o.slow_calls })),
      incidents: Number(counts.all),
      integrityIncidents: Number(counts.integrity),
      nowSec,
    });
    op.score = detail.score;
    op.scoreReasons = detail.reasons;
    op.scoreDetail = detail;
    await this.#db
      .updateTable('vault_operators')
      .set({ score: detail.score, score_reasons: JSON.stringify(detail.reasons), updated_at: new Date() })
      .where('node_pubkey', '=', op.nodePubkey)
      .execute();
  }

  stop(): void {
    clearTimeout(this.#retryTimer);
  }
}
