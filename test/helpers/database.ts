import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, type Db } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';

/** The PostgreSQL server tests use: TEST_DATABASE_URL, or this machine's local server. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type Backend = 'pglite' | 'postgres';
export const BACKENDS: Backend[] = ['pglite', 'postgres'];

/** A new, empty PostgreSQL database on the test server, dropped by `drop()`. */
export async function createPostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `bridge_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      try {
        // pg-pool's end() resolves before its sockets close; forcing the drop while they are still
        // closing turns their exit into an uncaught FATAL 57P01 in the test run. Let them leave first.
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const { rows } = await c.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1', [name]);
          if (rows[0]?.n === '0') break;
          await new Promise((r) => setTimeout(r, 20));
        }
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A migrated database of either backend; `close()` destroys it. */
export async function openTestDatabase(backend: Backend): Promise<{ db: Db; databaseUrl: string | undefined; close: () => Promise<void> }> {
  if (backend === 'pglite') {
    const { db } = await openDatabase({});
    await migrateToLatest(db);
    return { db, databaseUrl: undefined, close: () => db.destroy() };
  }
  const created = await createPostgresDatabase();
  const { db } = await openDatabase({ databaseUrl: created.url });
  await migrateToLatest(db);
  return {
    db,
    databaseUrl: created.url,
    close: async () => {
      await db.destroy();
      await created.drop();
    },
  };
}
