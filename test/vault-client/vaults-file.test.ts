import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { operatorProtocol, parseVaultsFile, readVaultsFile } from '../../src/vault-client/vaults-file.ts';

const operator = { name: 'vault-a', url: 'http://127.0.0.1:7451', node_pubkey: '02' + 'ab'.repeat(32) };
const auditor = { url: 'http://127.0.0.1:7454', pubkey: 'cd'.repeat(32) };

describe('vaults file', () => {
  it('parses operators with an optional node key pin, and auditors', () => {
    const text = JSON.stringify({ operators: [operator, { name: 'vault-b', url: 'https://vault-b.example' }], auditors: [auditor] });
    expect(parseVaultsFile(text)).toEqual({
      ok: true,
      value: { operators: [operator, { name: 'vault-b', url: 'https://vault-b.example' }], auditors: [auditor] },
    });
    expect(parseVaultsFile(JSON.stringify({ operators: [operator] }))).toMatchObject({ ok: true, value: { auditors: [] } });
  });

  it('reads an operator\'s protocol, v0 when absent, and refuses an unknown one', () => {
    const parsed = parseVaultsFile(JSON.stringify({ operators: [operator, { name: 'old-v1', url: 'https://v1.example', protocol: 'v1' }, { name: 'explicit', url: 'https://v0.example', protocol: 'v0' }] }));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.operators.map(operatorProtocol)).toEqual(['v0', 'v1', 'v0']);
    // Absent stays absent: a file written without it parses to what was written.
    expect(parsed.value.operators[0]).toEqual(operator);
    const bad = parseVaultsFile(JSON.stringify({ operators: [{ ...operator, protocol: 'v2' }] }), 'vaults.json');
    expect(bad.ok ? null : bad.error.message).toMatch(/operators\.0\.protocol/);
  });

  it.each([
    ['not JSON', '{', /not valid JSON/],
    ['a duplicate name', JSON.stringify({ operators: [operator, { ...operator, url: 'http://127.0.0.1:1' }] }), /names must be unique/],
    ['a duplicate URL', JSON.stringify({ operators: [operator, { ...operator, name: 'vault-b' }] }), /URLs must be unique/],
    ['a non-http URL', JSON.stringify({ operators: [{ ...operator, url: 'ftp://x' }] }), /operators\.0\.url/],
    ['an x-only node key', JSON.stringify({ operators: [{ ...operator, node_pubkey: 'ab'.repeat(32) }] }), /node_pubkey/],
    ['an unknown field', JSON.stringify({ operators: [{ ...operator, token: 'x' }] }), /operators\.0/],
  ])('refuses %s, naming the problem', (_what, text, message) => {
    const parsed = parseVaultsFile(text, 'vaults.json');
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error.message).toMatch(message);
  });

  it('reads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaults-file-'));
    try {
      const good = join(dir, 'good.json');
      writeFileSync(good, JSON.stringify({ operators: [operator], auditors: [auditor] }));
      expect(readVaultsFile(good)).toEqual({ operators: [operator], auditors: [auditor] });
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ operators: 'none' }));
      expect(() => readVaultsFile(bad)).toThrow(bad);
      expect(() => readVaultsFile(join(dir, 'missing.json'))).toThrow(/cannot read vaults file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
