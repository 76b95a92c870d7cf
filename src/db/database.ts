import { mkdirSync } from 'node:fs';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { SerializedPGliteDialect } from './pglite-dialect.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

const INT8_OID = 20;

export interface DatabaseTarget {
  /** PostgreSQL URL; when absent, an embedded PGlite database. */
  databaseUrl?: string | undefined;
  /** Directory of the PGlite database; absent means in memory. */
  pgliteDir?: string | undefined;
  /** Connections in the PostgreSQL pool. */
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
      max: target.poolSize ?? 10,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID ? (value: string) => BigInt(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), backend: 'postgres' };
  }
  if (target.pgliteDir) mkdirSync(target.pgliteDir, { recursive: true });
  const pglite = await PGlite.create({
    ...(target.pgliteDir ? { dataDir: target.pgliteDir } : {}),
    parsers: { [pgliteTypes.INT8]: (value: string) => BigInt(value) },
  });
  return { db: new Kysely<Database>({ dialect: new SerializedPGliteDialect(pglite) }), backend: 'pglite' };
}
