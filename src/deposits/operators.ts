import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { INTEGRITY_INCIDENTS } from '../db/schema.ts';
import type { BitcoinNetwork } from '../protocol/invoice.ts';
import type { VaultInfo } from '../protocol/vault-api.ts';
import type { AuditorReportContent } from '../protocol/auditor-report.ts';
import type { VaultClient } from '../vault-client/vault-client.ts';
import { REPORT_RETENTION_SECONDS, scoreFromReports, withIncidents, type Score } from './reputation.ts';

export interface OperatorEntry {
  name: string;
  url: string;
  /** A pin: the node key the operator must report in /v0/info. */
  nodePubkey?: string | undefined;
}

export interface AuditorSource {
  pubkey: string;
  /** Verified reports about one operator since a time. */
  reports(operatorPubkey: string, sinceSec: number): Promise<AuditorReportContent[]>;
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
  /** The bridge's own observation: did the last call reach it. */
  available: boolean;
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
  readonly #onConnect: Array<(nodePubkey: string) => void> = [];
  readonly #auditorScores = new Map<string, Score>();
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(db: Db, createClient: (url: string) => VaultClient, logger: Logger) {
    this.#db = db;
    this.#createClient = createClient;
    this.#logger = logger;
  }

  /** Learns each operator from its /v0/info; one that does not answer is retried in the background. */
  async connect(entries: readonly OperatorEntry[]): Promise<void> {
    await Promise.all(entries.map((entry) => this.#connectOne(entry)));
    if (this.#pending.size > 0) this.#scheduleRetry();
  }

  async #connectOne(entry: OperatorEntry): Promise<void> {
    const client = this.#createClient(entry.url);
    let info: VaultInfo;
    try {
      info = await client.info();
    } catch (error) {
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
        score: scoreFromReports([], 0).score,
        score_reasons: JSON.stringify(scoreFromReports([], 0).reasons),
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

  get(nodePubkey: string): KnownOperator | undefined {
    return this.#operators.get(nodePubkey);
  }

  all(): KnownOperator[] {
    return [...this.#operators.values()];
  }

  /** The Bitcoin network of the operators (they must all agree), or undefined before any answered. */
  network(): BitcoinNetwork | undefined {
    return this.#operators.values().next().value?.network;
  }

  /** Records the bridge's own observation of an operator. */
  observe(nodePubkey: string, reachable: boolean): void {
    const op = this.#operators.get(nodePubkey);
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
      [...this.#operators.values()]
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

  /** Fetches auditor reports and recomputes every operator's score. */
  async refreshScores(auditors: readonly AuditorSource[], nowSec: number): Promise<void> {
    for (const op of this.#operators.values()) {
      const reports: AuditorReportContent[] = [];
      for (const auditor of auditors) {
        try {
          reports.push(...(await auditor.reports(op.nodePubkey, nowSec - REPORT_RETENTION_SECONDS)));
        } catch (error) {
          this.#logger.warn({ auditor: auditor.pubkey, err: error }, 'auditor not reachable');
        }
      }
      this.#auditorScores.set(op.nodePubkey, scoreFromReports(reports, nowSec));
      await this.#applyScore(op, nowSec);
    }
  }

  /** Lowers an operator's score at once after the bridge caught it misbehaving. */
  async noteIncident(nodePubkey: string): Promise<void> {
    const op = this.#operators.get(nodePubkey);
    if (op) await this.#applyScore(op, Math.floor(Date.now() / 1000));
  }

  /** The auditors' score, lowered by the bridge's own incident record (docs/reputation.md). */
  async #applyScore(op: KnownOperator, nowSec: number): Promise<void> {
    const base = this.#auditorScores.get(op.nodePubkey) ?? scoreFromReports([], nowSec);
    const since = new Date((nowSec - REPORT_RETENTION_SECONDS) * 1000);
    const counts = await this.#db
      .selectFrom('operator_incidents')
      .select([(eb) => eb.fn.countAll<bigint>().as('all'), (eb) => eb.fn.countAll<bigint>().filterWhere('kind', 'in', [...INTEGRITY_INCIDENTS]).as('integrity')])
      .where('operator_pubkey', '=', op.nodePubkey)
      .where('created_at', '>=', since)
      .executeTakeFirstOrThrow();
    const { score, reasons } = withIncidents(base, Number(counts.all), Number(counts.integrity));
    op.score = score;
    op.scoreReasons = reasons;
    await this.#db
      .updateTable('vault_operators')
      .set({ score, score_reasons: JSON.stringify(reasons), updated_at: new Date() })
      .where('node_pubkey', '=', op.nodePubkey)
      .execute();
  }

  stop(): void {
    clearTimeout(this.#retryTimer);
  }
}
