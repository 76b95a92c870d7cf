import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { connectionFromRow, type Connection } from '../deposits/connections.ts';
import { KIND } from '../protocol/kinds.ts';
import { nowSeconds, signEvent } from '../protocol/nostr-event.ts';
import { SUPPORTED_ENCRYPTIONS } from '../protocol/nwc-encryption.ts';
import type { BridgeKeys } from './keys.ts';
import { NOTIFICATION_TYPES } from './notification-types.ts';
import type { RelayPool } from './relay-pool.ts';

/** Some relays drop replaceable events; clients fail without one, so each is sent again daily. */
const REPUBLISH_AFTER_MS = 24 * 3600_000;
/** Info events published per tick: spreads a relay's worth of them over time, no bursts. */
const BATCH = 50;
const TICK_MS = 1_000;

/**
 * Publishes NIP-47 info events (kind 13194): the bridge-wide key's at start, each connection's
 * own key's when it is registered, and then every one of them again once a day and after a relay
 * reconnects (it may have lost them), a batch a second so many connections make no burst.
 */
export class InfoEventPublisher {
  readonly #db: Db;
  readonly #pool: RelayPool;
  readonly #keys: BridgeKeys;
  readonly #served: readonly string[];
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  readonly #runsJobs: () => boolean;
  #bridgeWidePublished = false;
  #stopped = false;

  /** `runsJobs`: whether this instance republishes the connections' info events (one instance does). */
  constructor(db: Db, pool: RelayPool, keys: BridgeKeys, served: readonly string[], logger: Logger, runsJobs: () => boolean = () => true) {
    this.#runsJobs = runsJobs;
    this.#db = db;
    this.#pool = pool;
    this.#keys = keys;
    this.#served = served;
    this.#logger = logger;
  }

  start(): void {
    this.#pool.onConnect(() => {
      this.#bridgeWidePublished = false;
      void this.#db
        .updateTable('connections')
        .set({ info_published_at: null })
        .where('service_pubkey', 'is not', null)
        .execute()
        .catch((err: unknown) => this.#logger.warn({ err }, 'could not schedule info events again'));
    });
    const tick = () => {
      void this.#tick()
        .catch((err: unknown) => this.#logger.warn({ err: String(err) }, 'info event publishing failed; will retry'))
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, TICK_MS).unref();
        });
    };
    tick();
  }

  async #tick(): Promise<void> {
    if (!this.#bridgeWidePublished) {
      await this.#pool.publish(this.#event(this.#keys.serviceSecret, this.#served));
      this.#bridgeWidePublished = true;
      this.#logger.info({ pubkey: this.#keys.servicePubkey }, 'published the bridge-wide NIP-47 info event');
    }
    if (!this.#runsJobs()) return;
    const due = await this.#db
      .selectFrom('connections')
      .selectAll()
      .where('service_pubkey', 'is not', null)
      .where('revoked', '=', false)
      .where((eb) => eb.or([eb('info_published_at', 'is', null), eb('info_published_at', '<', new Date(Date.now() - REPUBLISH_AFTER_MS))]))
      .orderBy('info_published_at', (ob) => ob.asc().nullsFirst())
      .limit(BATCH)
      .execute();
    for (const row of due) await this.publishFor(connectionFromRow(row));
  }

  /** Publishes a connection's info event now: its granted methods, on its own key. */
  async publishFor(connection: Connection): Promise<void> {
    const methods = this.#served.filter((m) => connection.grant.methods.includes(m));
    await this.#pool.publish(this.#event(this.#keys.forConnection(connection.pubkey).secret, methods));
    await this.#db.updateTable('connections').set({ info_published_at: new Date() }).where('pubkey', '=', connection.pubkey).execute();
  }

  /** Content: the methods, and `notifications` when they are sent (NIP-47 "Info Event"). */
  #event(secret: Uint8Array, capabilities: readonly string[]) {
    const tags = [['encryption', SUPPORTED_ENCRYPTIONS.join(' ')]];
    if (capabilities.includes('notifications')) tags.push(['notifications', NOTIFICATION_TYPES.join(' ')]);
    return signEvent({ kind: KIND.nwcInfo, created_at: nowSeconds(), tags, content: capabilities.join(' ') }, secret);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
