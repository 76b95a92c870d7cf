import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite';

/** Opens a devnet database: a file (its folder is created) or, for null, one in memory. */
export function openDatabase(path: string | null): DatabaseSync {
  if (path !== null) mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path ?? ':memory:');
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
  return db;
}

/** Prepared statements by their SQL text, per database: preparing one costs more than running most of them. */
const prepared = new WeakMap<DatabaseSync, Map<string, StatementSync>>();

/**
 * The statement for `sql`, prepared once per database, reading every INTEGER as bigint (so msat
 * columns never pass through a JS number). The SQL texts are the code's own, so the cache stays small.
 */
export function statement(db: DatabaseSync, sql: string): StatementSync {
  let cache = prepared.get(db);
  if (!cache) {
    cache = new Map();
    prepared.set(db, cache);
  }
  let found = cache.get(sql);
  if (!found) {
    found = db.prepare(sql);
    found.setReadBigInts(true);
    cache.set(sql, found);
  }
  return found;
}

/**
 * Runs `fn` in one write transaction. `fn` is synchronous, so no other JavaScript can run
 * between its reads and its writes; BEGIN IMMEDIATE also keeps other processes out.
 */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
}

type Row = Record<string, SQLOutputValue>;

/** Typed column readers: a mismatch is a schema bug, so they throw. */
export function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw new TypeError(`column ${column} is not text`);
  return value;
}

export function textOrNull(row: Row, column: string): string | null {
  const value = row[column];
  return value === null ? null : text(row, column);
}

/** An INTEGER column read by a statement with setReadBigInts(true): msats. */
export function bigint(row: Row, column: string): bigint {
  const value = row[column];
  if (typeof value !== 'bigint') throw new TypeError(`column ${column} is not a bigint integer`);
  return value;
}

export function bigintOrNull(row: Row, column: string): bigint | null {
  return row[column] === null ? null : bigint(row, column);
}

/** A small INTEGER column (times, counts, flags), read with or without setReadBigInts. */
export function int(row: Row, column: string): number {
  const value = row[column];
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) {
    return Number(value);
  }
  throw new TypeError(`column ${column} is not a safe integer`);
}

export function intOrNull(row: Row, column: string): number | null {
  return row[column] === null ? null : int(row, column);
}
