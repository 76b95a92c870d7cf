import type { Db } from '../db/database.ts';
import { findConnection, type Connection } from '../deposits/connections.ts';

/** Connections kept in memory: a few kilobytes each (the grant event and its parsed terms). */
const DEFAULT_CAPACITY = 10_000;

/**
 * Connections by pubkey, kept in memory so that answering a request costs no read of its
 * connection. A cached connection is never trusted alone: the request is recorded (claimed, or
 * stored with its answer) only while the connection's row still holds the same grant, and a
 * payment's admission checks it again under the row's lock. One found changed is forgotten,
 * read again, and the request answered on the new grant. The least recently used are dropped
 * past `capacity`.
 */
export class ConnectionCache {
  readonly #db: Db;
  readonly #capacity: number;
  readonly #entries = new Map<string, Connection>();

  constructor(db: Db, capacity = DEFAULT_CAPACITY) {
    this.#db = db;
    this.#capacity = capacity;
  }

  /** The connection, from memory or from the database (undefined when there is none). */
  async get(pubkey: string): Promise<Connection | undefined> {
    const cached = this.#entries.get(pubkey);
    if (cached) {
      this.#entries.delete(pubkey);
      this.#entries.set(pubkey, cached);
      return cached;
    }
    const connection = await findConnection(this.#db, pubkey);
    if (connection) {
      if (this.#entries.size >= this.#capacity) this.#entries.delete(this.#entries.keys().next().value!);
      this.#entries.set(pubkey, connection);
    }
    return connection;
  }

  /** Drops the connection from memory: the next request reads it again. */
  forget(pubkey: string): void {
    this.#entries.delete(pubkey);
  }
}
