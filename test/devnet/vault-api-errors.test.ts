/** Bad input to the reference operator's Vault API gets the documented error body, never a stack trace. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { errorBodySchema } from '../../src/protocol/vault-api.ts';
import { newKeypair } from '../helpers/authorization.ts';
import { startTestDevnet } from '../helpers/devnet.ts';

describe('Vault API error bodies', () => {
  let devnet: Devnet;
  let base: string;
  const caller = generateSecretKey();

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
    base = devnet.operators[0]?.url ?? '';
  });
  afterAll(async () => {
    await devnet.stop();
  });

  /** Sends a request and returns its status and parsed error body (failing if it is not the documented one). */
  const send = async (method: string, path: string, options: { body?: string; auth?: string | null; contentType?: string; headers?: Record<string, string> } = {}) => {
    const url = base + path;
    const headers: Record<string, string> = { ...options.headers };
    const auth = options.auth === undefined ? httpAuthHeader(caller, url, method, options.body) : options.auth;
    if (auth !== null) headers.authorization = auth;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await fetch(url, { method, headers, body: options.body });
    const text = await response.text();
    expect(text).not.toMatch(/\n\s+at |stack/i);
    const parsed = errorBodySchema.safeParse(JSON.parse(text));
    expect(parsed.success, text).toBe(true);
    if (!parsed.success) throw new Error(text);
    return { status: response.status, code: parsed.data.error.code, message: parsed.data.error.message };
  };

  it.each([
    ['bad JSON', 'POST', '/v0/deposits', { body: '{"open": ' }, 400, 'BAD_REQUEST', /not valid JSON/],
    ['an empty body', 'POST', '/v0/deposits', { body: '' }, 400, 'BAD_REQUEST', /expected a JSON body/],
    ['a body failing the schema', 'POST', '/v0/deposits', { body: '{"open": {"kind": 1}}' }, 400, 'BAD_REQUEST', /open/],
    ['a non-JSON content type', 'POST', '/v0/deposits', { body: 'open=1', contentType: 'application/x-www-form-urlencoded' }, 400, 'BAD_REQUEST', /JSON/],
    ['no Authorization header', 'GET', '/v0/info', { auth: null }, 401, 'UNAUTHORIZED', /missing Authorization/],
    ['a garbage Authorization header', 'GET', '/v0/info', { auth: 'Bearer 123' }, 401, 'UNAUTHORIZED', /NIP-98/],
    ['an unknown route', 'GET', '/v0/nothing-here', {}, 404, 'NOT_FOUND', /no route/],
    ['an unknown method on a route', 'DELETE', '/v0/info', {}, 404, 'NOT_FOUND', /no route/],
    ['a bad event cursor', 'GET', '/v0/events?after=-1', {}, 400, 'BAD_REQUEST', /after/],
    ['a malformed payment hash', 'GET', '/v0/deposits/x/invoices/not-a-hash', {}, 400, 'BAD_REQUEST', /payment_hash/],
    ['an unknown deposit', 'GET', '/v0/deposits/unknown', {}, 404, 'NOT_FOUND', /no such deposit/],
  ] as const)('answers %s with %i %s', async (_what, method, path, options, status, code, message) => {
    const answer = await send(method, path, options);
    expect(answer).toMatchObject({ status, code });
    expect(answer.message).toMatch(message);
  });

  it('refuses a NIP-98 token signed for another URL (the u tag must be this operator URL)', async () => {
    const wrong = httpAuthHeader(caller, `http://localhost:1${'/v0/info'}`, 'GET');
    expect(await send('GET', '/v0/info', { auth: wrong })).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: expect.stringMatching(/another URL/) });
    const withoutQuery = httpAuthHeader(caller, `${base}/v0/events`, 'GET');
    expect(await send('GET', '/v0/events?after=3', { auth: withoutQuery })).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('refuses a NIP-98 token whose payload hash is not the raw body', async () => {
    const body = JSON.stringify({ open: signDepositOpen(newKeypair().secretKey) });
    const auth = httpAuthHeader(caller, `${base}/v0/deposits`, 'POST', body + ' ');
    expect(await send('POST', '/v0/deposits', { body, auth })).toMatchObject({ status: 401, code: 'UNAUTHORIZED', message: expect.stringMatching(/payload/) });
  });

  it('refuses a NIP-98 token for another method', async () => {
    const auth = httpAuthHeader(caller, `${base}/v0/info`, 'POST');
    expect(await send('GET', '/v0/info', { auth })).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('answers a body above the size limit with BAD_REQUEST', async () => {
    const body = JSON.stringify({ open: 'x'.repeat(300 * 1024) });
    expect(await send('POST', '/v0/deposits', { body })).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
  });

  it('hashes the raw bytes: the same JSON with other whitespace is accepted when signed as sent', async () => {
    const open = signDepositOpen(newKeypair().secretKey);
    const body = `{ "open" :\n ${JSON.stringify(open)} }`;
    const response = await fetch(`${base}/v0/deposits`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: httpAuthHeader(caller, `${base}/v0/deposits`, 'POST', body) },
      body,
    });
    expect(response.status).toBe(201);
  });

  it('answers 503 UNAVAILABLE to everything while down', async () => {
    const op = devnet.operators[0];
    if (!op) throw new Error('no operator');
    op.faults.down = true;
    try {
      expect(await send('GET', '/v0/info')).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
      expect(await send('GET', '/v0/nothing')).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    } finally {
      op.faults.down = false;
    }
    expect((await fetch(`${base}/v0/info`, { headers: { authorization: httpAuthHeader(caller, `${base}/v0/info`, 'GET') } })).status).toBe(200);
  });

  it('resumes the event stream from Last-Event-ID', async () => {
    const url = `${base}/v0/events`;
    const controller = new AbortController();
    const response = await fetch(url, {
      headers: { authorization: httpAuthHeader(caller, url, 'GET'), 'last-event-id': '12' },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    controller.abort();
    const bad = await send('GET', '/v0/events', { headers: { 'last-event-id': 'abc' } });
    expect(bad).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
  });
});
