import { sql } from 'kysely';
import { soleWriterClock, type Db } from '../db/database.ts';
import { Batcher } from '../db/batcher.ts';
import { compiledOnce } from '../db/compiled-once.ts';
import type { WriteClock } from '../db/write-clock.ts';
import { retryingLostRaces } from '../db/lost-race.ts';
import { findConnection, type Connection } from '../deposits/connections.ts';
import { availableMsatSum } from '../deposits/transactions.ts';
import type { Msat } from '../protocol/amounts.ts';

/** Connections kept in memory: a few kilobytes each (the grant event and its parsed terms). */
const DEFAULT_CAPACITY = 10_000;
/** A connection's `last_used_at` is written at most this often by one instance. */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Which of the checked connections' rows still hold the grant checked (null: any), by the
 * check's position, with the balance of each one's user: get_balance, the most frequent
 * request, needs no other statement. Built once: one statement per batch of checks.
 */
const grantCheckStatement = compiledOnce(['pubkeys', 'grantsCreatedAt'], (_db, a: { pubkeys: string[]; grantsCreatedAt: (bigint | null)[] }) =>
  sql<{ ord: string; available: bigint }>`
    select checked.ord, balance.available
    from unnest(${a.pubkeys}::text[], ${a.grantsCreatedAt}::bigint[]) with ordinality as checked (pubkey, grant_created_at, ord)
    join connections on connections.pubkey = checked.pubkey
      and (checked.grant_created_at is null or connections.grant_created_at = checked.grant_created_at)
    cross join lateral (select ${availableMsatSum} as available from deposits where deposits.user_pubkey = connections.user_pubkey) as balance
  `,
);

/** A connection read from memory, to check against its row: null grant means any grant will do. */
interface GrantCheck {
  pubkey: string;
  grantCreatedAt: bigint | null;
}

/** The connection's row held the grant when checked; what its user could spend then, read by the same statement. */
export interface GrantHeld {
  availableMsat: Msat;
}

/**
 * Connections by pubkey, kept in memory so that answering a request costs no read of its
 * connection. A cached connection is never trusted alone: a request is claimed, or a read-only
 * answer published (`stillHolds`), only while the connection's row still holds the same grant,
 * and a payment's admission checks it again under the row's lock. One found changed is
 * forgotten, read again, and the request answered on the new grant. The least recently used are
 * dropped past `capacity`.
 *
 * On a database only this process can change (embedded PGlite), a check that passed is passed
 * again from memory, with the balance it read, until any statement that may write ends there
 * (`WriteClock`): polling get_balance then asks the database nothing.
 */
export class ConnectionCache {
  readonly #db: Db;
  readonly #capacity: number;
  readonly #entries = new Map<string, Connection>();
  readonly #grantChecks: Batcher<GrantCheck, GrantHeld | null>;
  readonly #uses: Batcher<string, undefined>;
  /** When this instance last wrote each connection's `last_used_at` (ms). */
  readonly #usesNoted = new Map<string, number>();
  readonly #writeClock: WriteClock | undefined;
  /** Checks passed at `#passedAt` on the write clock, by connection and grant checked. */
  readonly #passed = new Map<string, GrantHeld>();
  #passedAt = -1;

  constructor(db: Db, capacity = DEFAULT_CAPACITY) {
    this.#db = db;
    this.#capacity = capacity;
    this.#writeClock = soleWriterClock(db);
    this.#grantChecks = new Batcher(async (checks) => {
      const { rows } = await grantCheckStatement(db, { pubkeys: checks.map((c) => c.pubkey), grantsCreatedAt: checks.map((c) => c.grantCreatedAt) });
      const held = new Map(rows.map((r) => [Number(r.ord), { availableMsat: r.available }]));
      return checks.map((_, i) => held.get(i + 1) ?? null);
    });
    this.#uses = new Batcher(async (pubkeys) => {
      // Rows locked in pubkey order: two instances writing overlapping sets cannot deadlock.
      await retryingLostRaces(() =>
        sql`
          with ordered as (select pubkey from connections where pubkey = any(${[...new Set(pubkeys)]}::text[]) order by pubkey for update)
          update connections set last_used_at = greatest(last_used_at, now()) where pubkey in (select pubkey from ordered)
        `.execute(db),
      );
      return pubkeys.map(() => undefined);
    });
  }

  /** The connection if it is in memory: most requests need no promise to find theirs. */
  cached(pubkey: string): Connection | undefined {
    const cached = this.#entries.get(pubkey);
    if (cached) {
      this.#entries.delete(pubkey);
      this.#entries.set(pubkey, cached);
    }
    return cached;
  }

  /** The connection as its row holds it now, then kept in memory (undefined when there is none). */
  async read(pubkey: string): Promise<Connection | undefined> {
    const connection = await findConnection(this.#db, pubkey);
    if (connection) {
      if (this.#entries.size >= this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(pubkey, connection);
    }
    return connection;
  }

  /**
   * Whether the connection's row still holds the grant `connection` was read with (`anyGrant`:
   * whether the row still exists), with its user's available balance then; null when it does not.
   * The checks of requests that arrive together are one statement.
   */
  stillHolds(connection: Connection, anyGrant: boolean): Promise<GrantHeld | null> {
    const check = { pubkey: connection.pubkey, grantCreatedAt: anyGrant ? null : BigInt(connection.grant.createdAt) };
    const clock = this.#writeClock;
    if (!clock) return this.#grantChecks.add(check);
    // Read before the statement is sent: a write that ends after this moment makes its answer stale.
    const at = clock.now;
    if (this.#passedAt !== at) {
      this.#passed.clear();
      this.#passedAt = at;
    }
    const key = `${check.pubkey}:${check.grantCreatedAt ?? 'any'}`;
    const passed = this.#passed.get(key);
    if (passed) return Promise.resolve(passed);
    const checked = this.#grantChecks.add(check);
    checked.then(
      (held) => {
        if (held && clock.now === at && this.#passed.size < this.#capacity) this.#passed.set(key, held);
      },
      () => undefined,
    );
    return checked;
  }

  /**
   * Records that the connection sent a request now, for requests that leave no row of their own
   * (read-only ones): to the minute, so that polling get_balance costs a write a minute at most.
   */
  async noteUse(pubkey: string): Promise<void> {
    const now = Date.now();
    const noted = this.#usesNoted.get(pubkey);
    if (noted !== undefined && now - noted < LAST_USED_RESOLUTION_MS) return;
    this.#usesNoted.delete(pubkey);
    if (this.#usesNoted.size >= this.#capacity) this.#usesNoted.delete(this.#usesNoted.keys().next().value!);
    this.#usesNoted.set(pubkey, now);
    await this.#uses.add(pubkey);
  }

  /** Drops the connection from memory: the next request reads it again. */
  forget(pubkey: string): void {
    this.#entries.delete(pubkey);
  }
}
