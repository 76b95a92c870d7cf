import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import { Relay } from 'nostr-tools/relay';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { buildZapReceipt } from './zap-request.ts';

const POLL_MS = 1_000;
const BATCH = 20;
/** How long one attempt may hold a receipt before another instance may try it. */
const CLAIM_SECONDS = 60;
/** Delays after failed attempts; after the last, the receipt is given up (its error kept). */
const RETRY_SECONDS = [5, 30, 120, 600, 3600];
const RELAY_TIMEOUT_MS = 5_000;

/** Sends one event to one relay; resolves with the relay's refusal, or null when it took it. */
export type PublishToRelay = (url: string, event: Event) => Promise<string | null>;

/** Connects, publishes, waits for the relay's OK (NIP-01), closes. Never throws. */
export const publishToRelay: PublishToRelay = async (url, event) => {
  let relay: Relay | undefined;
  try {
    relay = await Relay.connect(url, { timeout: RELAY_TIMEOUT_MS, enableReconnect: false });
    relay.publishTimeout = RELAY_TIMEOUT_MS;
    await relay.publish(event);
    return null;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // A relay that already has the event took it.
    return message.startsWith('duplicate:') ? null : message.slice(0, 200);
  } finally {
    relay?.close();
  }
};

/**
 * Publishes zap receipts (NIP-57, kind 9735) once their invoices settle. The receipt is built
 * once, stored, then sent to every relay the zap request named; it counts as published when at
 * least one relay took it, and is tried again with backoff otherwise. Works from the database
 * (a settled zap invoice without a published receipt), so settlements from any path — the
 * vault event stream, a lookup, verify — and receipts left by a crash are all picked up; rows
 * are claimed with SKIP LOCKED and a short lease, so several instances share the work.
 */
export class ZapReceiptPublisher {
  readonly #db: Db;
  readonly #secret: Uint8Array;
  readonly #logger: Logger;
  readonly #publish: PublishToRelay;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(db: Db, zapSecret: Uint8Array, logger: Logger, publish: PublishToRelay = publishToRelay) {
    this.#db = db;
    this.#secret = zapSecret;
    this.#logger = logger;
    this.#publish = publish;
  }

  start(): void {
    this.#timer = setInterval(() => this.poke(), POLL_MS);
    this.#timer.unref();
    this.poke();
  }

  /** Looks for receipts to publish now (or right after the run in progress). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#run()
      .catch((err: unknown) => this.#logger.warn({ err: String(err) }, 'could not publish zap receipts; will retry'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.poke();
        }
      });
  }

  async #run(): Promise<void> {
    for (;;) {
      const batch = await this.#claim();
      if (batch.length === 0) return;
      await Promise.all(batch.map((item) => this.#send(item)));
      if (batch.length < BATCH || this.#stopped) return;
    }
  }

  /** Claims due receipts of settled zap invoices (building and storing each receipt once). */
  async #claim(): Promise<{ transactionId: bigint; receipt: Event; relays: string[]; attempts: number }[]> {
    return this.#db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('lnurl_invoices')
        .innerJoin('transactions', 'transactions.id', 'lnurl_invoices.transaction_id')
        .select([
          'lnurl_invoices.transaction_id',
          'lnurl_invoices.zap_request',
          'lnurl_invoices.zap_relays',
          'lnurl_invoices.zap_receipt',
          'lnurl_invoices.zap_attempts',
          'transactions.invoice',
          'transactions.preimage',
          'transactions.settled_at',
        ])
        .where('lnurl_invoices.zap_request', 'is not', null)
        .where('lnurl_invoices.zap_published_at', 'is', null)
        .where('lnurl_invoices.zap_next_attempt_at', '<=', sql<Date>`now()`)
        .where('lnurl_invoices.zap_attempts', '<', RETRY_SECONDS.length + 1)
        .where('transactions.state', '=', 'settled')
        // Paid but not credited (no balance both channel peers signed): the owner did not get it.
        .where('transactions.failure_reason', 'is', null)
        .orderBy('lnurl_invoices.transaction_id')
        .limit(BATCH)
        .forUpdate('lnurl_invoices')
        .skipLocked()
        .execute();
      const claimed = [];
      for (const row of rows) {
        if (row.zap_request === null || row.preimage === null || row.settled_at === null) continue;
        const receipt = row.zap_receipt ?? buildZapReceipt({ raw: row.zap_request, invoice: row.invoice, preimage: row.preimage, settledAt: Number(row.settled_at) }, this.#secret);
        await trx
          .updateTable('lnurl_invoices')
          .set({ zap_receipt: JSON.stringify(receipt), zap_next_attempt_at: sql<Date>`now() + make_interval(secs => ${CLAIM_SECONDS})` })
          .where('transaction_id', '=', row.transaction_id)
          .execute();
        claimed.push({ transactionId: row.transaction_id, receipt, relays: row.zap_relays ?? [], attempts: row.zap_attempts });
      }
      return claimed;
    });
  }

  async #send(item: { transactionId: bigint; receipt: Event; relays: string[]; attempts: number }): Promise<void> {
    const refusals = await Promise.all(item.relays.map(async (url) => ({ url, refusal: await this.#publish(url, item.receipt) })));
    const took = refusals.filter((r) => r.refusal === null);
    const errors = refusals.filter((r) => r.refusal !== null).map((r) => `${r.url}: ${r.refusal}`);
    if (took.length > 0) {
      await this.#db
        .updateTable('lnurl_invoices')
        .set({ zap_published_at: new Date(), zap_attempts: item.attempts + 1, zap_last_error: errors.length > 0 ? errors.join('; ').slice(0, 1000) : null })
        .where('transaction_id', '=', item.transactionId)
        .execute();
      return;
    }
    const delay = RETRY_SECONDS[item.attempts] ?? RETRY_SECONDS[RETRY_SECONDS.length - 1] ?? 3600;
    this.#logger.warn({ transaction: item.transactionId.toString(), errors }, 'no relay took a zap receipt; will retry');
    await this.#db
      .updateTable('lnurl_invoices')
      .set({
        zap_attempts: item.attempts + 1,
        zap_last_error: (errors.join('; ') || 'no relay').slice(0, 1000),
        zap_next_attempt_at: sql<Date>`now() + make_interval(secs => ${delay})`,
      })
      .where('transaction_id', '=', item.transactionId)
      .execute();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
