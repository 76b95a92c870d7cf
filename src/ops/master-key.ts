import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { hexToBytes } from '../protocol/hex.ts';

const HEX_KEY = /^[0-9a-f]{64}$/;

/** Where the master key came from; logged instead of the key. */
export type MasterKeySource = 'MASTER_KEY' | 'MASTER_KEY_FILE' | 'data-dir' | 'generated';

export class MasterKeyError extends Error {
  override name = 'MasterKeyError';
}

/**
 * The 32-byte master key every bridge key derives from (wallet service keys, the Vault API
 * caller key):
 *
 * - `MASTER_KEY` (64 hex characters), else
 * - the file `MASTER_KEY_FILE` names (64 hex characters, surrounding whitespace ignored), else
 * - in local mode only (no `DATABASE_URL`: an embedded database one process owns),
 *   `DATA_DIR/master.key`, generated once with mode 0600.
 *
 * With `DATABASE_URL` (production, possibly several instances) a key is never generated: every
 * instance must derive the same wallet service keys, so a missing key stops the start.
 * Throws `MasterKeyError` naming the variable; neither the key nor a file's content is ever
 * logged or put into an error message.
 */
export function loadMasterKey(config: Pick<Config, 'masterKey' | 'masterKeyFile' | 'dataDir' | 'databaseUrl'>, logger: Logger): { key: Uint8Array; source: MasterKeySource } {
  if (config.masterKey !== undefined) {
    if (!HEX_KEY.test(config.masterKey)) throw new MasterKeyError('MASTER_KEY must be 64 lowercase hex characters');
    return { key: hexToBytes(config.masterKey), source: 'MASTER_KEY' };
  }
  if (config.masterKeyFile !== undefined) {
    if (!existsSync(config.masterKeyFile)) throw new MasterKeyError(`MASTER_KEY_FILE ${config.masterKeyFile} does not exist`);
    return { key: readKeyFile(config.masterKeyFile, 'MASTER_KEY_FILE'), source: 'MASTER_KEY_FILE' };
  }
  if (config.databaseUrl !== undefined) {
    throw new MasterKeyError('MASTER_KEY or MASTER_KEY_FILE is required with DATABASE_URL: every instance must share one master key (see docs/deploy.md)');
  }
  const file = path.join(config.dataDir, 'master.key');
  if (existsSync(file)) return { key: readKeyFile(file, file), source: 'data-dir' };
  mkdirSync(path.dirname(file), { recursive: true });
  // `wx`: never overwrite a key another process wrote in the meantime.
  writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  logger.warn({ file }, 'generated a new master key (local mode); back it up: it derives the wallet service keys');
  return { key: readKeyFile(file, file), source: 'generated' };
}

function readKeyFile(file: string, name: string): Uint8Array {
  const hex = readFileSync(file, 'utf8').trim();
  if (!HEX_KEY.test(hex)) throw new MasterKeyError(`${name} must hold 64 lowercase hex characters`);
  return hexToBytes(hex);
}
