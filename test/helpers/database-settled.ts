import pg from 'pg';
import { openDatabase, type Db } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createPostgresDatabase, openTestDatabase, TEST_DATABASE_URL, type Backend } from './database.ts';

/**
 * Like `openTestDatabase`, but on PostgreSQL `close()` waits until the pool's sessions have
 * really left before dropping the database. pg-pool's `end()` resolves before its clients'
 * sockets close, so a `drop database … with (force)` right after it terminates sessions that
 * are still closing, and their FATAL 57P01 surfaces as an uncaught error in the test run.
 * That happens whenever a test used several pooled connections at once.
 */
export async function openSettledTestDatabase(backend: Backend): Promise<{ db: Db; close: () => Promise<void> }> {
  if (backend === 'pglite') return openTestDatabase('pglite');
  const created = await createPostgresDatabase();
  const name = new URL(created.url).pathname.slice(1);
  const { db } = await openDatabase({ databaseUrl: created.url });
  await migrateToLatest(db);
  return {
    db,
    close: async () => {
      await db.destroy();
      await waitForNoSessions(name);
      await created.drop();
    },
  };
}

async function waitForNoSessions(database: string, timeoutMs = 10_000): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await admin.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1', [database]);
      if (rows[0]?.n === '0' || Date.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await admin.end();
  }
}
