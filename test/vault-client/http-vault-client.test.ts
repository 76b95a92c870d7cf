/**
 * HttpVaultClient's own duties: the event stream (resume, reconnect, status, close), error
 * mapping, and refusing answers that do not match the Vault API schemas.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { VaultEvent } from '../../src/protocol/vault-api.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { verifyHttpAuth } from '../../src/protocol/nip98.ts';
import { nowSeconds } from '../../src/protocol/nostr-event.ts';
import { parseSessionAuth, sessionKey, verifySessionAuth, type VaultSession } from '../../src/protocol/vault-session.ts';
import { newParty, requestAuthorization, signTestGrant } from '../helpers/authorization.ts';
import { readVector } from '../vectors/generate.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no address');
  return address.port;
}

describe('HttpVaultClient event stream against the reference operator', () => {
  let devnet: Devnet;
  const bridgeKey = generateSecretKey();
  let vault: HttpVaultClient;

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
    vault = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: bridgeKey, reconnectDelayMs: { initial: 20, max: 100 } });
  });
  afterAll(async () => {
    await devnet.stop();
  });

  const topUp = async (depositId: string, amount: bigint) => {
    const invoice = await vault.createInvoice(depositId, { amountMsat: amount });
    expect((await devnet.payInvoice(invoice.invoice)).state).toBe('settled');
    return invoice.payment_hash;
  };

  it('delivers events in order, resumes after an outage without loss or repeat, and reports its status', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, vault, party.user, 1_000_000n);
    const events: VaultEvent[] = [];
    const status: boolean[] = [];
    const subscription = vault.subscribeEvents(
      0,
      async (event) => {
        events.push(event);
      },
      (connected) => status.push(connected),
    );
    try {
      await eventually(() => events.length === 1, 'the funding event');
      expect(status).toEqual([true]);
      const op = devnet.operators[0];
      if (!op) throw new Error('no operator');
      op.faults.down = true;
      await eventually(() => status.length === 2, 'disconnect seen');
      expect(status).toEqual([true, false]);
      // Two payments arrive while the stream is still reconnecting (every response held 400 ms);
      // they must come through once each, in order.
      const missed: string[] = [];
      op.faults.down = false;
      op.faults.delayMs = 400;
      missed.push(await topUp(depositId, 2_000_000n));
      missed.push(await topUp(depositId, 3_000_000n));
      op.faults.delayMs = 0;
      await eventually(() => events.length === 3, 'missed events after reconnect');
      expect(status.at(-1)).toBe(true);
      expect(events.slice(1).map((e) => (e.type === 'invoice_settled' ? e.payment_hash : e.type))).toEqual(missed);
      expect(events.map((e) => e.seq)).toEqual([...new Set(events.map((e) => e.seq))].sort((a, b) => a - b));
    } finally {
      subscription.close();
    }
  });

  it('starts after the given seq and redelivers an event whose handler failed', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, vault, party.user, 1_000_000n);
    const seen: VaultEvent[] = [];
    const collector = vault.subscribeEvents(0, async (e) => {
      seen.push(e);
    });
    await eventually(() => seen.some((e) => e.type === 'invoice_settled' && e.deposit_id === depositId), 'funding event');
    collector.close();
    const last = seen.at(-1)?.seq ?? 0;

    const delivered: number[] = [];
    let failOnce = true;
    const subscription = vault.subscribeEvents(last, async (e) => {
      if (failOnce) {
        failOnce = false;
        throw new Error('handler failed');
      }
      delivered.push(e.seq);
    });
    try {
      const hash = await topUp(depositId, 4_000_000n);
      await eventually(() => delivered.length === 1, 'redelivery after the handler failed');
      const status = await vault.invoiceStatus(depositId, hash);
      expect(status.state).toBe('settled');
      expect(delivered[0]).toBeGreaterThan(last);
    } finally {
      subscription.close();
    }
  });

  it('stops delivering once closed', async () => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, vault, party.user, 1_000_000n);
    const received: VaultEvent[] = [];
    const subscription = vault.subscribeEvents(1_000_000, async (e) => {
      received.push(e);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    subscription.close();
    await topUp(depositId, 1_000_000n);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received).toEqual([]);
  });

  it('sees only the deposits its key watches', async () => {
    const other = new HttpVaultClient({ url: vault.url, secretKey: generateSecretKey() });
    const seen: VaultEvent[] = [];
    const subscription = other.subscribeEvents(0, async (e) => {
      seen.push(e);
    });
    try {
      const party = newParty();
      const depositId = await fundedDeposit(devnet, vault, party.user, 1_000_000n);
      const mine = await fundedDeposit(devnet, other, newParty().user, 1_000_000n);
      await eventually(() => seen.length === 1, 'own event');
      expect(seen.map((e) => e.deposit_id)).toEqual([mine]);
      expect(depositId).not.toBe(mine);
    } finally {
      subscription.close();
    }
  });

  it('raises UNAVAILABLE when the operator cannot be reached; a refused connection is not outcome-unknown', async () => {
    const nowhere = new HttpVaultClient({ url: `http://127.0.0.1:${await closedPort()}`, secretKey: bridgeKey });
    await expect(nowhere.info()).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false });
    await expect(nowhere.openDeposit(signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false });
  });
});

/** A server on a free local port that hands each request to `handle`; stop() ends it and its connections. */
async function localServer(handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ url: string; stop: () => Promise<void> }> {
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('HttpVaultClient against a misbehaving server', () => {
  let url = '';
  let stop: () => Promise<void>;
  let handler: (request: IncomingMessage, response: ServerResponse) => void = (_req, res) => res.end();

  beforeAll(async () => {
    ({ url, stop } = await localServer((request, response) => handler(request, response)));
  });
  afterAll(() => stop());

  const respond = (status: number, body: string) => {
    handler = (_request, response) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(body);
    };
  };
  const client = () => new HttpVaultClient({ url, secretKey: generateSecretKey(), timeoutMs: 500 });

  it('refuses a response that does not match the schema, naming what it expected', async () => {
    respond(200, JSON.stringify({ version: '1' }));
    await expect(client().info()).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/expected vault info/) });
    respond(200, 'not json');
    await expect(client().metrics()).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/expected vault metrics as JSON/) });
  });

  it('refuses a deposit owned by someone else than the signer of the open statement', async () => {
    const key = generateSecretKey();
    respond(
      200,
      JSON.stringify({
        deposit_id: 'd1',
        owner: 'ab'.repeat(32),
        vault_id: 'cd'.repeat(32),
        channel_id: 'ef'.repeat(32),
        multisig_pubkey: '12'.repeat(32),
        address: 'x',
        created_at: 1,
      }),
    );
    await expect(client().openDeposit(signDepositOpen(key))).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/owned by the signer/) });
  });

  it('maps the documented error body to its code, and trusts nothing else', async () => {
    respond(402, JSON.stringify({ error: { code: 'INSUFFICIENT_BALANCE', message: 'too poor' } }));
    await expect(client().depositStatus('d')).rejects.toMatchObject({ code: 'INSUFFICIENT_BALANCE', status: 402, message: expect.stringMatching(/too poor/) });
    // A bare 404 (a proxy, a wrong path) must not read as "this payment never happened".
    respond(404, '<html>not found</html>');
    await expect(client().paymentStatus('d', 'k')).rejects.toMatchObject({ code: 'INTERNAL', status: 404 });
    respond(404, JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no payment' } }));
    expect(await client().paymentStatus('d', 'k')).toBeNull();
    respond(502, 'bad gateway');
    await expect(client().metrics()).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false });
    await expect(client().pushGrant('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: true });
    respond(500, JSON.stringify({ error: { code: 'INTERNAL', message: 'boom' } }));
    await expect(client().lock('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
  });

  it('marks a POST whose connection dropped after sending as outcome-unknown', async () => {
    handler = (request) => request.socket.destroy();
    await expect(client().pushGrant('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: true });
  });

  it('gives up on an operator that does not answer within the timeout: a POST is outcome-unknown, a GET is not', async () => {
    handler = () => undefined;
    await expect(client().pushGrant('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: true, message: expect.stringMatching(/timed out after 500 ms/) });
    await expect(client().depositStatus('d')).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false, message: expect.stringMatching(/timed out after 500 ms/) });
  });

  it('times out a body that stops half way, after the status came', async () => {
    handler = (_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"deposit_id":');
    };
    await expect(client().pushGrant('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: true, message: expect.stringMatching(/timed out/) });
  });

  it('does not follow a redirect: the call was signed for its own URL', async () => {
    handler = (_request, response) => {
      response.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' });
      response.end();
    };
    await expect(client().depositStatus('d')).rejects.toMatchObject({ code: 'INTERNAL', status: 307 });
  });

  it('signs every call with NIP-98 for the exact URL requested', async () => {
    let seen: { url: string | undefined; auth: string | undefined } = { url: undefined, auth: undefined };
    handler = (request, response) => {
      seen = { url: request.url, auth: request.headers.authorization };
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'none' } }));
    };
    await client().paymentStatus('dep/1', 'key?x');
    expect(seen.url).toBe('/v0/deposits/dep%2F1/payments/key%3Fx');
    const token = JSON.parse(Buffer.from((seen.auth ?? '').replace(/^Nostr /, ''), 'base64').toString('utf8'));
    expect(token.kind).toBe(27235);
    expect(token.tags).toContainEqual(['u', `${url}/v0/deposits/dep%2F1/payments/key%3Fx`]);
    expect(token.tags).toContainEqual(['method', 'GET']);
  });

  it('refuses hold, amountless and keysend answers that are not what was asked, as outcome-unknown', async () => {
    const vector = readVector<{ invoice: string; vault_proof: { proof: { deposit_id: string; payment_hash: string; amount_msat: string } } }>('vault-proofs.json');
    const proof = vector.vault_proof.proof;
    const invoice = {
      invoice: vector.invoice,
      payment_hash: proof.payment_hash,
      amount_msat: proof.amount_msat,
      description: 'deposit',
      description_hash: null,
      created_at: 1,
      expires_at: 3601,
      state: 'pending',
      settled_at: null,
      preimage: null,
      proof,
      balance_update: null,
    };
    const depositId = proof.deposit_id;
    // A hold invoice must be marked hold and be for the payment hash asked for.
    respond(201, JSON.stringify({ ...invoice, hold: false }));
    await expect(client().createHoldInvoice(depositId, { amountMsat: 21_000n, paymentHash: proof.payment_hash })).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
    respond(201, JSON.stringify({ ...invoice, hold: true }));
    expect((await client().createHoldInvoice(depositId, { amountMsat: 21_000n, paymentHash: proof.payment_hash })).hold).toBe(true);
    await expect(client().createHoldInvoice(depositId, { amountMsat: 21_000n, paymentHash: 'cd'.repeat(32) })).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
    // An amountless invoice must say 0 in its record and its proof.
    await expect(client().createInvoice(depositId, {})).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/the amount and deposit asked for/) });
    // A settle must answer settled; a cancel canceled.
    respond(200, JSON.stringify({ ...invoice, hold: true, state: 'accepted' }));
    await expect(client().settleHoldInvoice(depositId, proof.payment_hash, 'ab'.repeat(32))).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
    await expect(client().cancelHoldInvoice(depositId, proof.payment_hash)).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
    respond(200, JSON.stringify({ ...invoice, hold: true, state: 'canceled', canceled_at: 2 }));
    expect((await client().cancelHoldInvoice(depositId, proof.payment_hash)).state).toBe('canceled');

    // A keysend with the app's preimage pays its SHA-256, nothing else.
    const party = newParty();
    const preimage = 'ab'.repeat(32);
    const payment = {
      idempotency_key: 'k',
      payment_hash: 'cd'.repeat(32),
      state: 'pending',
      amount_msat: '1000',
      max_fee_msat: '10',
      fee_msat: '0',
      preimage: null,
      failure_reason: null,
      created_at: 1,
      settled_at: null,
      balance_update: null,
    };
    respond(201, JSON.stringify(payment));
    const destination = '02' + '11'.repeat(32);
    const keysend = {
      keysend: { destination, preimage },
      amountMsat: 1_000n,
      maxFeeMsat: 10n,
      idempotencyKey: 'k',
      authorization: requestAuthorization(party, signTestGrant(party), 'pay_keysend', { amount: 1000, pubkey: destination, preimage }),
    };
    await expect(client().pay('d', keysend)).rejects.toMatchObject({ code: 'INTERNAL', outcomeUnknown: true });
    let body: unknown = null;
    handler = (request, response) => {
      let raw = '';
      request.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      request.on('end', () => {
        body = JSON.parse(raw);
        response.writeHead(201, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ ...payment, payment_hash: sha256Hex(preimage) }));
      });
    };
    expect((await client().pay('d', { ...keysend, keysend: { destination, preimage, tlvRecords: [{ type: 65_536n, value: 'aa' }] } })).payment_hash).toBe(sha256Hex(preimage));
    expect(body).toMatchObject({ keysend: { destination, preimage, tlv_records: [{ type: '65536', value: 'aa' }] }, amount_msat: '1000', max_fee_msat: '10' });
    expect(body).not.toHaveProperty('invoice');
  });
});

describe('HttpVaultClient sessions against a scripted server', () => {
  let url = '';
  let stop: () => Promise<void>;
  /** Every request as received: path and Authorization header. */
  let seen: { path: string; auth: string }[] = [];
  let handler: (request: IncomingMessage, response: ServerResponse) => void = (_req, res) => res.end();

  beforeAll(async () => {
    ({ url, stop } = await localServer((request, response) => {
      seen.push({ path: request.url ?? '', auth: request.headers.authorization ?? '' });
      handler(request, response);
    }));
  });
  afterAll(() => stop());

  const json = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };
  const notFound = (response: ServerResponse) => json(response, 404, { error: { code: 'NOT_FOUND', message: 'no payment' } });
  /** Answers POST /v0/sessions with a new session each time (checking its NIP-98), and hands other calls to `call`. */
  const operator = (call: (request: IncomingMessage, response: ServerResponse, sessions: VaultSession[]) => void) => {
    const sessions: VaultSession[] = [];
    handler = (request, response) => {
      if (request.url === '/v0/sessions') {
        expect(verifyHttpAuth(request.headers.authorization, `${url}/v0/sessions`, 'POST', undefined, nowSeconds()).ok).toBe(true);
        const session = { session_id: bytesToHex(generateSecretKey()).slice(0, 32), secret: bytesToHex(generateSecretKey()), expires_at: nowSeconds() + 3600 };
        sessions.push(session);
        json(response, 201, session);
        return;
      }
      call(request, response, sessions);
    };
    return sessions;
  };
  const sessionOf = (auth: string, sessions: VaultSession[]) => {
    const parsed = parseSessionAuth(auth);
    if (parsed === null || !parsed.ok) return undefined;
    return sessions.find((s) => s.session_id === parsed.value.sessionId);
  };
  const client = () => new HttpVaultClient({ url, secretKey: generateSecretKey(), timeoutMs: 500, sessions: true });

  it('opens one session for concurrent calls and signs each call in it for its own URL and method', async () => {
    seen = [];
    const sessions = operator((request, response, open) => {
      const session = sessionOf(request.headers.authorization ?? '', open);
      const parsed = parseSessionAuth(request.headers.authorization);
      if (!session || parsed === null || !parsed.ok) return json(response, 401, { error: { code: 'UNAUTHORIZED', message: 'no' } });
      expect(verifySessionAuth(parsed.value, sessionKey(session.secret), url + (request.url ?? ''), request.method ?? '', undefined, nowSeconds())).toEqual({ ok: true, value: undefined });
      notFound(response);
    });
    const vault = client();
    expect(await Promise.all([vault.paymentStatus('d', 'k1'), vault.paymentStatus('d', 'k2'), vault.paymentStatus('d', 'k3')])).toEqual([null, null, null]);
    expect(await vault.paymentStatus('d', 'k4')).toBeNull();
    expect(sessions).toHaveLength(1);
    expect(seen.map((r) => [r.path, r.auth.split(' ')[0]])).toEqual([
      ['/v0/sessions', 'Nostr'],
      ['/v0/deposits/d/payments/k1', 'NostrSession'],
      ['/v0/deposits/d/payments/k2', 'NostrSession'],
      ['/v0/deposits/d/payments/k3', 'NostrSession'],
      ['/v0/deposits/d/payments/k4', 'NostrSession'],
    ]);
  });

  it('after SESSION_EXPIRED opens a new session and sends the call again, once', async () => {
    seen = [];
    // The operator forgets every session but the newest (as after a restart).
    const sessions = operator((request, response, open) => {
      const session = sessionOf(request.headers.authorization ?? '', open);
      if (session !== open.at(-1)) return json(response, 401, { error: { code: 'SESSION_EXPIRED', message: 'unknown session' } });
      notFound(response);
    });
    const vault = client();
    expect(await vault.paymentStatus('d', 'k1')).toBeNull();
    sessions.push({ session_id: 'ff'.repeat(16), secret: 'ff'.repeat(32), expires_at: nowSeconds() + 3600 });
    expect(await vault.paymentStatus('d', 'k2')).toBeNull();
    expect(sessions.map((s) => s.session_id).filter((id) => id !== 'ff'.repeat(16))).toHaveLength(2);
    expect(seen.map((r) => r.path)).toEqual(['/v0/sessions', '/v0/deposits/d/payments/k1', '/v0/deposits/d/payments/k2', '/v0/sessions', '/v0/deposits/d/payments/k2']);

    // An operator refusing every session: one resend, then the refusal is the answer (nothing was done).
    seen = [];
    operator((_request, response) => json(response, 401, { error: { code: 'SESSION_EXPIRED', message: 'unknown session' } }));
    await expect(client().paymentStatus('d', 'k3')).rejects.toMatchObject({ code: 'SESSION_EXPIRED', status: 401, outcomeUnknown: false });
    expect(seen.map((r) => r.path)).toEqual(['/v0/sessions', '/v0/deposits/d/payments/k3', '/v0/sessions', '/v0/deposits/d/payments/k3']);
  });

  it('signs with NIP-98 at an operator without sessions, without asking again on every call', async () => {
    seen = [];
    handler = (_request, response) => notFound(response);
    const vault = client();
    expect(await vault.paymentStatus('d', 'k1')).toBeNull();
    expect(await vault.paymentStatus('d', 'k2')).toBeNull();
    expect(seen.map((r) => [r.path, r.auth.split(' ')[0]])).toEqual([
      ['/v0/sessions', 'Nostr'],
      ['/v0/deposits/d/payments/k1', 'Nostr'],
      ['/v0/deposits/d/payments/k2', 'Nostr'],
    ]);
    expect(verifyHttpAuth(seen[2]?.auth, `${url}/v0/deposits/d/payments/k2`, 'GET', undefined, nowSeconds()).ok).toBe(true);
  });

  it('fails a call whose session could not be opened for want of an answer as never sent', async () => {
    seen = [];
    handler = (request) => request.socket.destroy();
    await expect(client().pushGrant('d', signDepositOpen(generateSecretKey()))).rejects.toMatchObject({ code: 'UNAVAILABLE', outcomeUnknown: false });
    expect(seen.map((r) => r.path)).toEqual(['/v0/sessions']);
  });
});

function sha256Hex(hex: string): string {
  return bytesToHex(sha256(hexToBytes(hex)));
}
