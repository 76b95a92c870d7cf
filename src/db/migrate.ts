import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kysely } from 'kysely';
import { FileMigrationProvider, Migrator, type MigrationResultSet } from 'kysely/migration';

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

function migrator(db: Kysely<any>): Migrator {
  // Migrations are written on parallel branches and each touches only its own tables: a database
  // that ran a later-numbered one first still takes an earlier one that landed after it.
  return new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }), allowUnorderedMigrations: true });
}

/**
 * Runs every pending migration under migrations/. Kysely's migrator takes a lock, so several
 * instances may start at once. Throws with the failing migration's name.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet['results']> {
  const { error, results } = await migrator(db).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed`, { cause: error });
  }
  return results;
}
