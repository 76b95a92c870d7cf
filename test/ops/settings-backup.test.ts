import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { nip19 } from 'nostr-tools';
import pg from 'pg';
import { openSettings } from '../../src/ops/settings-backup.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

async function signed(url: string, method: 'GET' | 'PUT', userKey: Uint8Array, body?: unknown) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const response = await fetch(url, {
    method,
    headers: { ...(text ? { 'content-type': 'application/json' } : {}), authorization: httpAuthHeader(userKey, url, method, text) },
    ...(text ? { body: text } : {}),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('settings export and import (encrypted to the user key)', () => {
  let world: World | undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-settings-'));
  let ownerKey: Uint8Array | undefined;
  afterAll(async () => {
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('survive the loss of the database: connections, policy, lightning address and lock come back, and the same NWC URIs work', async () => {
    world = await startWorld('postgres');
    const userKey = generateSecretKey();
    ownerKey = userKey;
    const nsec = nip19.nsecEncode(userKey);
    const url = () => world!.bridge.url;
    const uris = [
      (await runCli(['connect', '--url', url(), '--user-key', nsec, '--name', 'shop', '--budget-sat', '50000', '--renewal', 'weekly'])).lastLine,
      (await runCli(['connect', '--url', url(), '--user-key', nsec, '--name', 'phone', '--methods', 'get_info,get_balance,pay_invoice'])).lastLine,
    ];
    const policy = { max_share_ppm: 600_000, test_amount_msat: '25000', trusted_score: 0.5, min_score: 0.05, exponent: 2 };
    expect((await signed(`${url()}/api/policy`, 'PUT', userKey, policy)).status).toBe(200);
    const name = `alice${bytesToHex(generateSecretKey()).slice(0, 6)}`;
    await runCli(['address', name, '--url', url(), '--user-key', nsec]);
    await runCli(['lock', '--url', url(), '--user-key', nsec]);
    const before = new RawNwcClient(uris[0]!, 'nip44_v2');
    expect((await before.request('get_info')).result.methods).toBeDefined();
    before.close();

    const file = path.join(dir, 'settings.json');
    const exported = await runCli(['export', '--url', url(), '--user-key', nsec, '--out', file]);
    expect(exported.lastLine).toMatch(/settings backup written/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const envelope = JSON.parse(text) as Record<string, unknown>;
    expect(envelope).toMatchObject({ type: 'deposit-bridge-settings', version: 1, user: getPublicKey(userKey), encryption: 'nip44_v2' });
    // Nothing readable without the key: not the connection keys, not the names, not the address.
    for (const uri of uris) expect(text).not.toContain(new RawNwcClient(uri).pubkey);
    for (const clear of ['shop', 'phone', name]) expect(text).not.toContain(clear);

    // The database is lost: every table dropped, the bridge started again on an empty one (same master key).
    await world.bridge.stop();
    const admin = new pg.Client({ connectionString: world.databaseUrl });
    await admin.connect();
    await admin.query('drop schema public cascade; create schema public;');
    await admin.end();
    await world.restartBridge();
    await waitFor(async () => (await fetch(`${url()}/health`)).status === 200, 'bridge on an empty database');
    // Nothing is known of the user any more (their apps' requests go unanswered).
    expect(await world.bridge.wallet.db.selectFrom('connections').select('pubkey').execute()).toEqual([]);
    expect(await world.bridge.wallet.db.selectFrom('users').select('pubkey').execute()).toEqual([]);

    const imported = await runCli(['import', file, '--url', url(), '--user-key', nsec]);
    expect(imported.stdout).not.toMatch(/^failed/m);
    expect(imported.lastLine).toBe('5 of 5 restored');

    const shop = new RawNwcClient(uris[0]!, 'nip44_v2');
    const phone = new RawNwcClient(uris[1]!, 'nip44_v2');
    try {
      expect((await shop.request('get_balance')).error).toBeNull();
      expect((await shop.request('get_budget')).result).toMatchObject({ total_budget: 50_000_000, renewal_period: 'weekly' });
      expect((await phone.request('make_invoice', { amount: 1000 })).error?.code).toBe('RESTRICTED');
      // The lock came back: no payment leaves the deposits.
      const payee = world.devnet.createPayeeInvoice(1_000n).invoice;
      expect((await shop.request('pay_invoice', { invoice: payee })).error?.code).toBe('RESTRICTED');
    } finally {
      shop.close();
      phone.close();
    }
    expect((await signed(`${url()}/api/policy`, 'GET', userKey)).json).toEqual(policy);
    expect((await signed(`${url()}/api/address`, 'GET', userKey)).json).toMatchObject({ name });
  });

  it('refuses a backup opened with another key, a changed one, and an unknown version', () => {
    const owner = ownerKey!;
    const text = readFileSync(path.join(dir, 'settings.json'), 'utf8');
    expect(openSettings(text, owner).grants).toHaveLength(2);
    expect(() => openSettings(text, generateSecretKey())).toThrow(/another user key/);
    const envelope = JSON.parse(text) as { ciphertext: string; version: number };
    const changed = { ...envelope, ciphertext: envelope.ciphertext.slice(0, 40) + (envelope.ciphertext[40] === 'A' ? 'B' : 'A') + envelope.ciphertext.slice(41) };
    expect(() => openSettings(JSON.stringify(changed), owner)).toThrow(/does not decrypt with this key/);
    expect(() => openSettings(JSON.stringify({ ...envelope, version: 2 }), owner)).toThrow(/version 2 is not supported/);
    expect(() => openSettings('{"hello": 1}', owner)).toThrow(/not a deposit-bridge settings backup/);
  });
});
