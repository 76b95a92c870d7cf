import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { SerializedPGliteDialect } from './pglite-dialect.ts';
import type { Database } from './schema.ts';
import type { WriteClock } from './write-clock.ts';

export type Db = Kysely<Database>;

/** The write clocks of databases only this process can change, by their kysely instance. */
const soleWriterClocks = new WeakMap<Db, WriteClock>();

/**
 * The write clock of a database that only this process can change (embedded PGlite opened by
 * `openDatabase`); undefined for PostgreSQL, where other instances write too.
 */
export function soleWriterClock(db: Db): WriteClock | undefined {
  return soleWriterClocks.get(db);
}

const INT8_OID = 20;

/** How many distinct statements are prepared per pooled connection; any more run unprepared. */
const MAX_PREPARED_STATEMENTS = 500;
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;

/**
 * Names the statements kysely sends (select/insert/update/delete), so that node-postgres
 * prepares each one once per pooled connection and afterwards only binds and executes it: the
 * server parses and plans it once instead of on every call. Names come from the SQL text; at
 * most MAX_PREPARED_STATEMENTS are kept, other statements run as before. A statement whose
 * prepared form a migration invalidated ("cached plan must not change result type") is run
 * unprepared from then on.
 */
function preparingStatements(pool: pg.Pool): void {
  const names = new Map<string, string | null>();
  const nameOf = (text: string): string | null => {
    let name = names.get(text);
    if (name === undefined) {
      if (names.size >= MAX_PREPARED_STATEMENTS || !PREPARABLE.test(text)) return null;
      name = `k${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
      names.set(text, name);
    }
    return name;
  };
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    const prepared = (...args: unknown[]): unknown => {
      const [text, values] = args;
      const name = args.length === 2 && typeof text === 'string' && Array.isArray(values) ? nameOf(text) : null;
      if (name === null) return query(...args);
      return query({ name, text, values }).catch((error: unknown) => {
        if (!(error instanceof Error && 'code' in error && error.code === '0A000' && /cached plan/.test(error.message))) throw error;
        names.set(text as string, null);
        return query(text, values);
      });
    };
    Object.assign(client, { query: prepared });
  });
}

export interface DatabaseTarget {
  /** PostgreSQL URL; when absent, an embedded PGlite database. */
  databaseUrl?: string | undefined;
  /** Directory of the PGlite database; absent means in memory. */
  pgliteDir?: string | undefined;
  /**
   * Connections in the PostgreSQL pool (default 5). Statements are short and the busiest are
   * batched, so a few connections serve many requests; more only add server processes to wake
   * (the bench measured 5 % less CPU per payment with 4 than with 10).
   */
  poolSize?: number;
}

/**
 * Opens the database. Both backends read BIGINT as bigint, so msat amounts never pass through
 * a JS number.
 */
export async function openDatabase(target: DatabaseTarget): Promise<{ db: Db; backend: 'postgres' | 'pglite' }> {
  if (target.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: target.databaseUrl,
      max: target.poolSize ?? 5,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID ? (value: string) => BigInt(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    preparingStatements(pool);
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), backend: 'postgres' };
  }
  if (target.pgliteDir) mkdirSync(target.pgliteDir, { recursive: true });
  const pglite = await PGlite.create({
    ...(target.pgliteDir ? { dataDir: target.pgliteDir } : {}),
    parsers: { [pgliteTypes.INT8]: (value: string) => BigInt(value) },
  });
  const dialect = new SerializedPGliteDialect(pglite);
  const db = new Kysely<Database>({ dialect });
  soleWriterClocks.set(db, dialect.writeClock);
  return { db, backend: 'pglite' };
}
