import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { Db } from '../db/database.ts';
import type { NotificationSink } from '../deposits/notification-outbox.ts';
import { KIND } from '../protocol/kinds.ts';
import { nowSeconds, signEvent } from '../protocol/nostr-event.ts';
import { encryptContent, sharedKey } from '../protocol/nwc-encryption.ts';
import type { BridgeKeys } from './keys.ts';
import type { RelayTransport } from './relay-pool.ts';
import { nip47Transaction } from './transaction-view.ts';

const BATCH = 100;
const POLL_MS = 1_000;

/**
 * Sends the notification outbox: for each queued row, builds once and stores the two events
 * NIP-47 asks for (kind 23197 with NIP-44, kind 23196 with NIP-04, each with a `p` tag for the
 * connection, signed with its wallet service key), then publishes them. After a crash the very
 * same events are published again, so a client that dedupes by event id sees each once. Rows are
 * claimed with SKIP LOCKED, so several instances share the work.
 */
export class NotificationSender implements NotificationSink {
  readonly #db: Db;
  readonly #transport: RelayTransport;
  readonly #keys: BridgeKeys;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  readonly #runsJobs: () => boolean;

  /** `runsJobs`: whether this instance sends the outbox now (one instance among several does). */
  constructor(db: Db, transport: RelayTransport, keys: BridgeKeys, logger: Logger, runsJobs: () => boolean = () => true) {
    this.#runsJobs = runsJobs;
    this.#db = db;
    this.#transport = transport;
    this.#keys = keys;
    this.#logger = logger;
  }

  start(): void {
    this.#timer = setInterval(() => this.poke(), POLL_MS);
    this.#timer.unref();
    this.poke();
  }

  /** Sends what is queued, now (or right after the run in progress). */
  poke(): void {
    if (this.#stopped || !this.#runsJobs()) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#sendQueued()
      .catch((err: unknown) => this.#logger.warn({ err: String(err) }, 'could not send notifications; will retry'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.poke();
        }
      });
  }

  async #sendQueued(): Promise<void> {
    for (;;) {
      const batch = await this.#db.transaction().execute(async (trx) => {
        const rows = await trx
          .selectFrom('notifications')
          .innerJoin('connections', 'connections.pubkey', 'notifications.connection_pubkey')
          .innerJoin('transactions', 'transactions.id', 'notifications.transaction_id')
          .select(['notifications.id', 'notifications.type', 'notifications.events', 'connections.pubkey as connection', 'connections.service_pubkey'])
          .select((eb) => eb.ref('transactions.id').as('tx_id'))
          .where('notifications.published_at', 'is', null)
          .orderBy('notifications.id')
          .limit(BATCH)
          .forUpdate('notifications')
          .skipLocked()
          .execute();
        const ready: { id: bigint; events: Event[] }[] = [];
        for (const row of rows) {
          let events = row.events;
          if (!events) {
            const tx = await trx.selectFrom('transactions').selectAll().where('id', '=', row.tx_id).executeTakeFirstOrThrow();
            events = this.#build(row.connection, row.service_pubkey, { notification_type: row.type, notification: nip47Transaction(tx) });
            await trx.updateTable('notifications').set({ events: JSON.stringify(events) }).where('id', '=', row.id).execute();
          }
          ready.push({ id: row.id, events });
        }
        return ready;
      });
      if (batch.length === 0) return;
      for (const { id, events } of batch) {
        await Promise.all(events.map((event) => this.#transport.publish(event)));
        await this.#db.updateTable('notifications').set({ published_at: new Date() }).where('id', '=', id).execute();
      }
      if (batch.length < BATCH) return;
    }
  }

  #build(connection: string, servicePubkey: string | null, body: unknown): Event[] {
    const secret = servicePubkey === null ? this.#keys.serviceSecret : this.#keys.forConnection(connection).secret;
    const plaintext = JSON.stringify(body);
    return (
      [
        [KIND.nwcNotification, 'nip44_v2'],
        [KIND.nwcNotificationNip04, 'nip04'],
      ] as const
    ).map(([kind, scheme]) =>
      signEvent({ kind, created_at: nowSeconds(), tags: [['p', connection]], content: encryptContent(scheme, sharedKey(scheme, secret, connection), plaintext) }, secret),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }
}
