/** Sessions at the reference operator (docs/vault-api.md, "Sessions"): opened with NIP-98, then calls signed with their secret. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { SESSION_TTL_SECONDS, VaultSessions } from '../../src/devnet/vault-sessions.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { nowSeconds } from '../../src/protocol/nostr-event.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { errorBodySchema, vaultInfoSchema } from '../../src/protocol/vault-api.ts';
import { parseSessionAuth, sessionAuthHeader as headerIn, sessionKey, vaultSessionSchema, type VaultSession } from '../../src/protocol/vault-session.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { newParty } from '../helpers/authorization.ts';
import { fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const sessionAuthHeader = (s: VaultSession, url: string, method: string, body: string | undefined, at: number) => headerIn(s.session_id, sessionKey(s.secret), url, method, body, at);

describe('sessions at the reference operator', () => {
  let devnet: Devnet;
  let base: string;
  const bridgeKey = generateSecretKey();

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
    base = devnet.operators[0]?.url ?? '';
  });
  afterAll(async () => {
    await devnet.stop();
  });

  const openSession = async (key: Uint8Array): Promise<VaultSession> => {
    const url = `${base}/v0/sessions`;
    const response = await fetch(url, { method: 'POST', headers: { authorization: httpAuthHeader(key, url, 'POST') } });
    expect(response.status).toBe(201);
    return vaultSessionSchema.parse(await response.json());
  };

  /** Sends a call with `authorization` and returns the status and, for an error, its documented code. */
  const send = async (method: string, path: string, authorization: string, body?: string) => {
    const response = await fetch(base + path, { method, headers: { authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body });
    const json: unknown = await response.json();
    const error = errorBodySchema.safeParse(json);
    return { status: response.status, code: error.success ? error.data.error.code : null, json };
  };
  const signed = (session: VaultSession, method: string, path: string, body?: string, at = nowSeconds()) => sessionAuthHeader(session, base + path, method, body, at);

  it('opens a session for the NIP-98 signer, lasting an hour, and serves calls signed in it', async () => {
    const before = nowSeconds();
    const session = await openSession(bridgeKey);
    expect(session.expires_at).toBeGreaterThanOrEqual(before + SESSION_TTL_SECONDS);
    expect(session.expires_at).toBeLessThanOrEqual(nowSeconds() + SESSION_TTL_SECONDS);
    const info = await send('GET', '/v0/info', signed(session, 'GET', '/v0/info'));
    expect(info.status).toBe(200);
    expect(vaultInfoSchema.safeParse(info.json).success).toBe(true);
  });

  it('knows the caller by the key that opened the session: it watches what that key opened, and nothing else', async () => {
    const party = newParty();
    const mine = await openSession(bridgeKey);
    const open = JSON.stringify({ open: signDepositOpen(party.user.secretKey) });
    const opened = await send('POST', '/v0/deposits', signed(mine, 'POST', '/v0/deposits', open), open);
    expect(opened.status).toBe(201);
    const depositId = (opened.json as { deposit_id: string }).deposit_id;
    const path = `/v0/deposits/${depositId}`;
    expect((await send('GET', path, signed(mine, 'GET', path))).status).toBe(200);
    // The same key over NIP-98 is the same caller.
    expect((await send('GET', path, httpAuthHeader(bridgeKey, base + path, 'GET'))).status).toBe(200);
    const stranger = await openSession(generateSecretKey());
    expect(await send('GET', path, signed(stranger, 'GET', path))).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const owner = await openSession(party.user.secretKey);
    expect((await send('GET', path, signed(owner, 'GET', path))).status).toBe(200);
  });

  it('refuses a MAC for another call, another time or another secret (UNAUTHORIZED), and an unknown session (SESSION_EXPIRED)', async () => {
    const session = await openSession(bridgeKey);
    const body = JSON.stringify({ open: signDepositOpen(newParty().user.secretKey) });
    const refused = async (authorization: string, send_: { method?: string; path?: string; body?: string } = {}) =>
      send(send_.method ?? 'POST', send_.path ?? '/v0/deposits', authorization, 'body' in send_ ? send_.body : body);
    expect(await refused(signed(session, 'POST', '/v0/deposits', body.replace('"open"', ' "open"')))).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await refused(signed(session, 'POST', '/v0/deposits?x=1', body))).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await refused(signed(session, 'GET', '/v0/info'), { method: 'GET', path: '/v0/metrics', body: undefined })).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await refused(signed(session, 'POST', '/v0/deposits', body, nowSeconds() - 120))).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await refused(signed({ ...session, secret: '00'.repeat(32) }, 'POST', '/v0/deposits', body))).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect(await refused(signed({ ...session, session_id: 'ab'.repeat(16) }, 'POST', '/v0/deposits', body))).toMatchObject({ status: 401, code: 'SESSION_EXPIRED' });
    expect(await refused('NostrSession nonsense')).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('opens a session only with NIP-98, not with another session', async () => {
    const session = await openSession(bridgeKey);
    expect(await send('POST', '/v0/sessions', signed(session, 'POST', '/v0/sessions'))).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });
});

describe('VaultSessions', () => {
  it('ends a session at its expiry second', () => {
    const sessions = new VaultSessions();
    const caller = getPublicKey(generateSecretKey());
    const session = sessions.open(caller, 1_000);
    const auth = (at: number) => {
      const parsed = parseSessionAuth(sessionAuthHeader(session, 'http://v/v0/info', 'GET', undefined, at));
      if (parsed === null || !parsed.ok) throw new Error('unparsed');
      return parsed.value;
    };
    expect(sessions.caller(auth(1_000 + SESSION_TTL_SECONDS - 1), 'http://v/v0/info', 'GET', undefined, 1_000 + SESSION_TTL_SECONDS - 1)).toEqual({ ok: true, value: caller });
    expect(sessions.caller(auth(1_000 + SESSION_TTL_SECONDS), 'http://v/v0/info', 'GET', undefined, 1_000 + SESSION_TTL_SECONDS)).toMatchObject({ ok: false, error: { code: 'SESSION_EXPIRED' } });
  });

  it('holds at most 10 000 sessions, forgetting the oldest first', () => {
    const sessions = new VaultSessions();
    const known = (session: VaultSession) => {
      const parsed = parseSessionAuth(sessionAuthHeader(session, 'http://v/', 'GET', undefined, 5));
      if (parsed === null || !parsed.ok) throw new Error('unparsed');
      return sessions.caller(parsed.value, 'http://v/', 'GET', undefined, 5).ok;
    };
    const first = sessions.open('a', 5);
    const second = sessions.open('a', 5);
    for (let i = 2; i < 10_000; i++) sessions.open('b', 5);
    expect([known(first), known(second)]).toEqual([true, true]);
    sessions.open('c', 5);
    expect([known(first), known(second)]).toEqual([false, true]);
  });
});

describe('HttpVaultClient in sessions across an operator restart', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'devnet-sessions-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('opens a new session when the restarted operator no longer knows its own, and the call goes through', async () => {
    const party = newParty();
    let devnet = await startTestDevnet({ dataDir, operators: 1, operatorPorts: [0] });
    const url = devnet.operators[0]?.url ?? '';
    const client = new HttpVaultClient({ url, secretKey: generateSecretKey(), sessions: true });
    try {
      const depositId = await fundedDeposit(devnet, client, party.user, 5_000_000n);
      await devnet.stop();
      devnet = await startTestDevnet({ dataDir, operators: 1, operatorPorts: [Number(new URL(url).port)] });
      expect((await client.depositStatus(depositId)).balance_msat).toBe(5_000_000n);
      const invoice = await client.createInvoice(depositId, { amountMsat: 1_000n });
      expect(invoice.amount_msat).toBe(1_000n);
    } finally {
      await devnet.stop();
    }
  });
});
