import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { loadMasterKey, MasterKeyError } from '../../src/ops/master-key.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { servicePorts, startProcess, waitForOutput, type RunningProcess } from '../helpers/process.ts';

const dirs: string[] = [];
const processes: RunningProcess[] = [];
afterAll(() => {
  for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-master-key-'));
  dirs.push(dir);
  return dir;
}

/** A logger at the most verbose level whose every line is kept. */
function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), text: () => lines.join('') };
}

const hexKey = () => randomBytes(32).toString('hex');

describe('the master key', () => {
  it('comes from MASTER_KEY when set, and no file is written', () => {
    const dir = tempDir();
    const key = hexKey();
    const { logger, text } = capturingLogger();
    const loaded = loadMasterKey(loadConfig({ MASTER_KEY: key, DATA_DIR: dir, DATABASE_URL: 'postgres://x@127.0.0.1/db' }), logger);
    expect(bytesToHex(loaded.key)).toBe(key);
    expect(loaded.source).toBe('MASTER_KEY');
    expect(existsSync(path.join(dir, 'master.key'))).toBe(false);
    expect(text()).not.toContain(key);
  });

  it('comes from the file MASTER_KEY_FILE names (a secret mounted as a file), surrounding whitespace ignored', () => {
    const dir = tempDir();
    const key = hexKey();
    const file = path.join(dir, 'secret');
    writeFileSync(file, `\n${key}\n`);
    const loaded = loadMasterKey(loadConfig({ MASTER_KEY_FILE: file, DATA_DIR: dir, DATABASE_URL: 'postgres://x@127.0.0.1/db' }), pino({ level: 'silent' }));
    expect(bytesToHex(loaded.key)).toBe(key);
    expect(loaded.source).toBe('MASTER_KEY_FILE');
  });

  it('is never generated in production (DATABASE_URL): the start stops naming the variables', () => {
    const dir = tempDir();
    expect(() => loadMasterKey(loadConfig({ DATA_DIR: dir, DATABASE_URL: 'postgres://x@127.0.0.1/db' }), pino({ level: 'silent' }))).toThrow(
      /MASTER_KEY or MASTER_KEY_FILE is required with DATABASE_URL/,
    );
    expect(existsSync(path.join(dir, 'master.key'))).toBe(false);
  });

  it('is generated into DATA_DIR/master.key (mode 0600) in local mode, once, and reused', () => {
    const dir = tempDir();
    const { logger, text } = capturingLogger();
    const first = loadMasterKey(loadConfig({ DATA_DIR: dir }), logger);
    expect(first.source).toBe('generated');
    const file = path.join(dir, 'master.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(bytesToHex(first.key));
    const second = loadMasterKey(loadConfig({ DATA_DIR: dir }), logger);
    expect(second.source).toBe('data-dir');
    expect(bytesToHex(second.key)).toBe(bytesToHex(first.key));
    expect(text()).toContain('generated a new master key');
    expect(text()).not.toContain(bytesToHex(first.key));
  });

  it('refuses a malformed key without repeating it in the error', () => {
    const dir = tempDir();
    const bad = hexKey().slice(0, 63) + 'Z';
    const file = path.join(dir, 'secret');
    writeFileSync(file, bad);
    const errors: string[] = [];
    for (const attempt of [() => loadConfig({ MASTER_KEY: bad }), () => loadMasterKey(loadConfig({ MASTER_KEY_FILE: file, DATA_DIR: dir }), pino({ level: 'silent' }))]) {
      try {
        attempt();
        errors.push('no error');
      } catch (error) {
        errors.push(String(error));
      }
    }
    expect(errors[0]).toMatch(/MASTER_KEY/);
    expect(errors[1]).toMatch(/MASTER_KEY_FILE must hold 64 lowercase hex characters/);
    for (const e of errors) expect(e).not.toContain(bad.slice(0, 20));
    expect(() => loadMasterKey(loadConfig({ MASTER_KEY_FILE: path.join(dir, 'absent'), DATA_DIR: dir }), pino({ level: 'silent' }))).toThrow(MasterKeyError);
  });
});

describe('deposit-bridge start and the master key', () => {
  it('stops at once in production without a key, before starting anything', async () => {
    const proc = startProcess(['start'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', DATA_DIR: tempDir(), NWC_RELAYS: 'ws://127.0.0.1:1', LOG_LEVEL: 'trace' });
    processes.push(proc);
    let stderr = '';
    proc.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await proc.exited).toBe(1);
    expect(stderr).toMatch(/MASTER_KEY or MASTER_KEY_FILE is required/);
  });

  it('in local mode generates the key, logs where it is but never the key, even at trace level', async () => {
    const dir = tempDir();
    const { httpPort, relayPort, devnetPort } = await servicePorts();
    const proc = startProcess(['start'], { DATA_DIR: dir, HTTP_PORT: String(httpPort), RELAY_PORT: String(relayPort), DEVNET_PORT: String(devnetPort), LOG_LEVEL: 'trace' });
    processes.push(proc);
    let stderr = '';
    proc.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitForOutput(proc, /deposit-bridge is running/);
    const key = readFileSync(path.join(dir, 'master.key'), 'utf8').trim();
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(path.join(dir, 'master.key')).mode & 0o777).toBe(0o600);
    const logs = proc.stdout() + stderr;
    expect(logs).toMatch(/"master_key_source":"generated"/);
    expect(logs).not.toContain(key);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(proc.stdout() + stderr).not.toContain(key);
  });
});
