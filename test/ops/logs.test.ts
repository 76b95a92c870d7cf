import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../src/app.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { startDevnet, type Devnet } from '../../src/devnet/devnet.ts';
import { createLogger } from '../../src/log.ts';
import { scrubText, scrubValue } from '../../src/ops/log-scrub.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, waitFor } from '../helpers/world.ts';

const INVOICE =
  'lnbcrt10u1p5abcdefpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdqqcqzzsxqyz5vqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qyyssq5shvh2hq';
const NSEC = 'nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5';

describe('log scrubbing', () => {
  it('abbreviates invoices at info and above, keeps them whole below, and always removes secrets', () => {
    const text = `paying ${INVOICE} for ${NSEC} via nostr+walletconnect://abc?relay=x&secret=${'ab'.repeat(32)}`;
    const atInfo = scrubText(text, true);
    expect(atInfo).not.toContain(INVOICE);
    expect(atInfo).toContain(INVOICE.slice(0, 12));
    expect(atInfo).not.toContain(NSEC);
    expect(atInfo).not.toContain('ab'.repeat(32));
    const atDebug = scrubText(text, false);
    expect(atDebug).toContain(INVOICE);
    expect(atDebug).not.toContain(NSEC);
  });

  it('scrubs inside objects, arrays and errors, keeping the error class and its fields; leaves clean values untouched', () => {
    class CodedError extends Error {
      code = 'PAYMENT_FAILED';
    }
    const error = new CodedError(`vault refused ${INVOICE}`);
    const logged = scrubValue({ nested: { list: [INVOICE] }, err: error }, true) as { nested: { list: string[] }; err: CodedError };
    expect(logged.nested.list[0]).not.toBe(INVOICE);
    expect(logged.err).toBeInstanceOf(CodedError);
    expect(logged.err.code).toBe('PAYMENT_FAILED');
    expect(logged.err.message).not.toContain(INVOICE);
    expect(error.message).toContain(INVOICE); // the original is not changed
    const clean = { a: 1, b: ['x'], c: new Error('plain') };
    expect(scrubValue(clean, true)).toBe(clean);
  });
});

describe('the logs of a running bridge', () => {
  let devnet: Devnet;
  let bridge: RunningBridge;
  const masterKey = crypto.getRandomValues(new Uint8Array(32));
  const lines: string[] = [];
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    devnet = await startDevnet({ dataDir: null, relayPort: 0, controlPort: 0, operatorPorts: [0, 0, 0], auditorPort: 0 });
    const { db } = await openDatabase({});
    await migrateToLatest(db);
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
        done();
      },
    });
    bridge = await startBridge({
      db,
      masterKey,
      relays: [devnet.relayUrl],
      operators: devnet.vaultsFile.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
      auditors: devnet.vaultsFile.auditors,
      httpHost: '127.0.0.1',
      httpPort: 0,
      alias: 'logs-bridge',
      drainTimeoutMs: 500,
      logger: createLogger('info', {}, destination),
    });
    await waitFor(async () => (await fetch(`${bridge.url}/health`)).status === 200, 'bridge health');
  });

  afterAll(async () => {
    await bridge?.stop();
    await devnet?.stop();
  });

  it('are JSON lines with a request id per NIP-47 and HTTP request, and carry no key, secret or whole invoice', async () => {
    const connected = await runCli(['connect', '--url', bridge.url]);
    const uri = connected.lastLine;
    const userKey = /(nsec1[0-9a-z]+)/.exec(connected.stderr)?.[1];
    expect(userKey).toBeDefined();
    const client = new RawNwcClient(uri, 'nip44_v2');
    /** A request, and the id of the event that carried it. */
    const request = async (method: string, params: Record<string, unknown>) => {
      const event = client.signRequest(client.encrypt(JSON.stringify({ method, params })));
      return { ...(await client.send(event)), requestId: event.id };
    };
    try {
      const made = await request('make_invoice', { amount: 5_000_000 });
      expect(made.error).toBeNull();
      await devnet.payInvoice(made.result.invoice);
      await waitFor(async () => (await client.request('get_balance')).result.balance === 5_000_000, 'funded');
      const payee = devnet.createPayeeInvoice(1_000_000n).invoice;
      const paid = await request('pay_invoice', { invoice: payee });
      expect(paid.error).toBeNull();
      const refused = await request('pay_invoice', { invoice: devnet.createPayeeInvoice(900_000_000n).invoice });
      expect(refused.error?.code).toBe('INSUFFICIENT_BALANCE');
      const info = await fetch(`${bridge.url}/api/info?x=1`);
      const httpId = info.headers.get('x-request-id');
      expect(httpId).toMatch(/^[0-9a-f-]{36}$/);

      await waitFor(() => records().some((r) => r.msg === 'http request answered' && r.request_id === httpId), 'the HTTP line');
      const all = records();
      // Every NIP-47 request answered has its line, tied to the request event's id and connection.
      const answered = all.filter((r) => r.msg === 'nwc request answered');
      for (const [id, method, outcome] of [
        [made.requestId, 'make_invoice', 'success'],
        [paid.requestId, 'pay_invoice', 'success'],
        [refused.requestId, 'pay_invoice', 'INSUFFICIENT_BALANCE'],
      ] as const) {
        const line = answered.find((r) => r.request_id === id);
        expect(line).toMatchObject({ method, outcome, connection: client.pubkey, level: 30 });
        expect(typeof line?.ms).toBe('number');
      }
      const http = all.find((r) => r.msg === 'http request answered' && r.request_id === httpId);
      expect(http).toMatchObject({ method: 'GET', route: '/api/info', status: 200 });
      // Health checks stay out of the info level.
      expect(all.some((r) => r.msg === 'http request answered' && r.route === '/health')).toBe(false);

      const text = lines.join('\n');
      for (const secret of [bytesToHex(masterKey), bytesToHex(client.secret), userKey!, made.result.invoice as string, payee, paid.result.preimage as string]) {
        expect(text).not.toContain(secret);
      }
    } finally {
      client.close();
    }
  });
});
