import type { PGlite } from '@electric-sql/pglite';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { WriteClock } from './write-clock.ts';

/**
 * A kysely dialect for PGlite that runs one transaction at a time. PGlite is a single
 * session, so two interleaved transactions would share one BEGIN…COMMIT (kysely-pglite and
 * kysely's own PGlite dialect both let a rolled-back transaction's writes be committed by
 * another). Here the one connection is a mutex: a transaction holds it from BEGIN to
 * COMMIT/ROLLBACK, a lone query holds it for itself. Every statement that ends is shown to
 * `writeClock`: PGlite belongs to this process, so no statement of another one changes it.
 */
export class SerializedPGliteDialect implements Dialect {
  readonly #pglite: PGlite;
  readonly #acquireTimeoutMs: number;
  readonly writeClock = new WriteClock();

  constructor(pglite: PGlite, options: { acquireTimeoutMs?: number } = {}) {
    this.#pglite = pglite;
    this.#acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000;
  }

  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new SerializedPGliteDriver(this.#pglite, this.#acquireTimeoutMs, this.writeClock);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}

class SerializedPGliteDriver implements Driver {
  readonly #connection: PGliteConnection;
  readonly #acquireTimeoutMs: number;
  #held = false;
  readonly #waiting: Array<() => void> = [];

  constructor(pglite: PGlite, acquireTimeoutMs: number, writeClock: WriteClock) {
    this.#connection = new PGliteConnection(pglite, writeClock);
    this.#acquireTimeoutMs = acquireTimeoutMs;
  }

  async init(): Promise<void> {}

  acquireConnection(): Promise<DatabaseConnection> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve(this.#connection);
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        resolve(this.#connection);
      };
      // A query waiting this long is almost always one issued on `db` inside a transaction.
      const timer = setTimeout(() => {
        const index = this.#waiting.indexOf(grant);
        if (index >= 0) this.#waiting.splice(index, 1);
        reject(new Error(`PGlite connection not free after ${this.#acquireTimeoutMs} ms (a query outside its transaction?)`));
      }, this.#acquireTimeoutMs);
      this.#waiting.push(grant);
    });
  }

  async releaseConnection(): Promise<void> {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#held = false;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const isolation = settings.isolationLevel ? ` isolation level ${settings.isolationLevel}` : '';
    await connection.executeQuery(CompiledQuery.raw(`begin${isolation}`));
  }
  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }
  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }
  async destroy(): Promise<void> {
    await this.#connection.close();
  }
}

class PGliteConnection implements DatabaseConnection {
  readonly #pglite: PGlite;
  readonly #writeClock: WriteClock;

  constructor(pglite: PGlite, writeClock: WriteClock) {
    this.#pglite = pglite;
    this.#writeClock = writeClock;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    let result;
    try {
      result = await this.#pglite.query<R>(compiledQuery.sql, [...compiledQuery.parameters], { rowMode: 'object' });
    } finally {
      // Before the caller goes on: nothing it does next can see a clock that missed this statement.
      this.#writeClock.ended(compiledQuery.sql);
    }
    return {
      rows: result.rows,
      numAffectedRows: result.affectedRows === undefined ? undefined : BigInt(result.affectedRows),
    };
  }

  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('PGlite does not stream query results');
  }

  async close(): Promise<void> {
    if (!this.#pglite.closed) await this.#pglite.close();
  }
}
