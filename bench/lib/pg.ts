/** Throwaway PostgreSQL databases for the bench (bench_<pid>_<name>), dropped afterwards. */
import { readFile } from 'node:fs/promises';
import pg from 'pg';

export const BENCH_PG_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: BENCH_PG_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** Creates a fresh database and returns its URL. */
export async function createBenchDatabase(name: string): Promise<string> {
  const db = `bench_${process.pid}_${name}`;
  await admin(async (c) => {
    await c.query(`drop database if exists ${db} with (force)`);
    await c.query(`create database ${db}`);
  });
  const url = new URL(BENCH_PG_URL);
  url.pathname = `/${db}`;
  return url.toString();
}

export async function dropBenchDatabase(url: string): Promise<void> {
  const db = new URL(url).pathname.slice(1);
  if (!/^bench_\d+_[a-z0-9_]+$/.test(db)) throw new Error(`refusing to drop ${db}`);
  await admin((c) => c.query(`drop database if exists ${db} with (force)`));
}

/**
 * Gathers the planner's statistics of a bench database, as autovacuum does for any database
 * that has been running a minute or so: the bench's are seconds old when they are measured, and
 * plans made for empty tables can read whole indexes once the tables have filled.
 */
export async function analyzeBenchDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('analyze');
  } finally {
    await client.end();
  }
}

export async function postgresReachable(): Promise<boolean> {
  try {
    await admin((c) => c.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/**
 * CPU time (ms) the PostgreSQL server processes serving `url`'s database have used so far, read
 * from /proc (the server runs on this machine); null when they cannot be read.
 */
export async function serverCpuMs(url: string): Promise<number | null> {
  const db = new URL(url).pathname.slice(1);
  try {
    const { rows } = await admin((c) => c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [db]));
    let ticks = 0;
    for (const { pid } of rows) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
      if (stat === null) continue;
      // Fields after the command name (which may hold spaces): utime and stime are the 14th and 15th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    }
    return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** USER_HZ: 100 on Linux everywhere this runs. */
const CLOCK_TICKS_PER_SECOND = 100;
