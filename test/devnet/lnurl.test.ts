/**
 * Lightning addresses paid through a vault: the vault resolves the address itself (LUD-16),
 * and refuses, before reserving or paying anything, whatever a lying or broken LNURL server
 * answers (an invoice for another amount, one not committing to the metadata, no payRequest,
 * no server at all).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { newParty, pay321Params, requestAuthorization, signTestGrant, type NwcParty } from '../helpers/authorization.ts';
import { fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;
const FUNDS = 50_000n * SAT;
const AMOUNT = 2_000n * SAT;
const METADATA = JSON.stringify([['text/plain', 'a test shop']]);
const METADATA_HASH = bytesToHex(sha256(new TextEncoder().encode(METADATA)));

type Behaviour = 'honest' | 'other-amount' | 'other-metadata' | 'withdraw' | 'error' | 'amountless';

describe('lightning addresses resolved by the vault', () => {
  let devnet: Devnet;
  let vault: HttpVaultClient;
  let server: Server;
  let host: string;
  let behaviour: Behaviour = 'honest';
  const requests: string[] = [];
  let party: NwcParty;
  let depositId: string;

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 1, operatorPorts: [0] });
    vault = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey() });
    // A shop's LNURL server on loopback, whose invoices are the devnet payee's.
    server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', `http://${request.headers.host}`);
      requests.push(url.pathname + url.search);
      const json = (body: unknown) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (url.pathname === '/.well-known/lnurlp/shop') {
        if (behaviour === 'error') return json({ status: 'ERROR', reason: 'shop closed' });
        return json({
          tag: behaviour === 'withdraw' ? 'withdrawRequest' : 'payRequest',
          callback: `http://${request.headers.host}/cb`,
          minSendable: 1000,
          maxSendable: 10_000_000,
          metadata: METADATA,
        });
      }
      if (url.pathname === '/cb') {
        const amount = BigInt(url.searchParams.get('amount') ?? '0');
        const invoiceAmount = behaviour === 'other-amount' ? amount * 2n : behaviour === 'amountless' ? null : amount;
        // An honest shop commits to its metadata; the 'other-metadata' one to a plain description.
        const made =
          behaviour === 'other-metadata' ? devnet.createPayeeInvoice(invoiceAmount, 'x') : devnet.createPayeeInvoice(invoiceAmount, '', { descriptionHash: METADATA_HASH });
        return json({ pr: made.invoice, routes: [] });
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    host = `127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await devnet.stop();
  });

  beforeEach(async () => {
    behaviour = 'honest';
    requests.length = 0;
    party = newParty();
    depositId = await fundedDeposit(devnet, vault, party.user, FUNDS);
  });

  const pay = (address: string, key = bytesToHex(generateSecretKey())) =>
    vault.pay(depositId, {
      lightningAddress: address,
      amountMsat: AMOUNT,
      maxFeeMsat: 20_000n,
      idempotencyKey: key,
      authorization: requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: address, amountMsat: AMOUNT })),
    });

  const expectRefusedUnpaid = async (attempt: () => Promise<unknown>, reason: RegExp) => {
    const refused = (await vault.metrics()).authorizations_refused;
    const error = await attempt().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(reason) });
    expect(await vault.depositStatus(depositId)).toMatchObject({ balance_msat: FUNDS, reserved_msat: 0n });
    expect((await vault.metrics()).authorizations_refused).toBe(refused + 1);
  };

  it('the vault itself fetches the payRequest and the callback with the signed amount', async () => {
    const payment = await pay(`shop@${host}`);
    expect(payment).toMatchObject({ state: 'settled', kind: 'lnurl', amount_msat: AMOUNT });
    expect(requests).toEqual(['/.well-known/lnurlp/shop', `/cb?amount=${AMOUNT}`]);
    expect(devnet.payeeInvoiceStatus(payment.payment_hash)).toMatchObject({ state: 'settled', descriptionHash: METADATA_HASH });
  });

  it.each<[Behaviour, RegExp]>([
    ['other-amount', /another amount/],
    ['amountless', /another amount/],
    ['other-metadata', /description hash is not that of its metadata/],
    ['withdraw', /did not answer a payRequest/],
    ['error', /refused: shop closed/],
  ])('refuses a server answering %s, before reserving anything', async (b, reason) => {
    behaviour = b;
    await expectRefusedUnpaid(() => pay(`shop@${host}`), reason);
  });

  it('refuses an address whose server does not answer', async () => {
    await expectRefusedUnpaid(() => pay('shop@127.0.0.1:9'), /unreachable/);
  });

  it('fetches nothing for a request the authorization already refuses', async () => {
    const error = await vault
      .pay(depositId, {
        lightningAddress: `shop@${host}`,
        amountMsat: AMOUNT,
        maxFeeMsat: 20_000n,
        idempotencyKey: 'wrong-amount',
        authorization: requestAuthorization(party, signTestGrant(party), 'pay', pay321Params({ payment: `shop@${host}`, amountMsat: AMOUNT - 1n })),
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(requests).toEqual([]);
  });
});
