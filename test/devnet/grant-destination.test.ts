/**
 * A grant naming one destination (docs/sweep.md), at the devnet's vaults over HTTP: the vault
 * pays that destination and refuses every other target (another node, another address, any
 * invoice, any transfer) with RESTRICTED, before reserving anything, counting the refusal, and
 * for a lightning address before even asking its server.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Event } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { bytesToHex } from '../../src/protocol/hex.ts';
import type { TransferDestination } from '../../src/protocol/transfer.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import type { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { PayParams } from '../../src/vault-client/vault-client.ts';
import { keysendParams, newParty, pay321Params, payAuthorization, requestAuthorization, signTestGrant, type NwcParty } from '../helpers/authorization.ts';
import { clientsFor, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;
const FUNDS = 100_000n * SAT;
const AMOUNT = 2_000n * SAT;
const MAX_FEE = 20n * SAT;

let counter = 0;
const key = () => `dest-${++counter}-${bytesToHex(crypto.getRandomValues(new Uint8Array(8)))}`;

describe('a vault holds a grant to its one destination', () => {
  let devnet: Devnet;
  let clients: HttpVaultClient[];
  let vault: HttpVaultClient;
  // A lightning address server that must never be asked: it counts what it is asked.
  let server: Server;
  let strangerHost: string;
  const strangerRequests: string[] = [];

  beforeAll(async () => {
    devnet = await startTestDevnet();
    clients = clientsFor(devnet);
    vault = clients[0]!;
    server = createServer((request, response) => {
      strangerRequests.push(request.url ?? '');
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    strangerHost = `127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await devnet?.stop();
  });

  /** A new user with a funded deposit at the first vault. */
  async function user(): Promise<{ party: NwcParty; depositId: string }> {
    const party = newParty();
    return { party, depositId: await fundedDeposit(devnet, vault, party.user, FUNDS) };
  }

  const keysendTo = (party: NwcParty, grant: Event, node: string): PayParams => ({
    keysend: { destination: node },
    amountMsat: AMOUNT,
    maxFeeMsat: MAX_FEE,
    idempotencyKey: key(),
    authorization: requestAuthorization(party, grant, 'pay_keysend', keysendParams({ amountMsat: AMOUNT, pubkey: node })),
  });
  const addressPay = (party: NwcParty, grant: Event, address: string): PayParams => ({
    lightningAddress: address,
    amountMsat: AMOUNT,
    maxFeeMsat: MAX_FEE,
    idempotencyKey: key(),
    authorization: requestAuthorization(party, grant, 'pay', pay321Params({ payment: address, amountMsat: AMOUNT })),
  });

  /** The payment is refused with RESTRICTED, nothing reserved or paid, and the refusal counted. */
  async function expectRestricted(depositId: string, params: PayParams, reason: RegExp): Promise<void> {
    const refusedBefore = (await vault.metrics()).authorizations_refused;
    const error = await vault.pay(depositId, params).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'RESTRICTED', message: expect.stringMatching(reason) });
    expect(await vault.depositStatus(depositId)).toMatchObject({ balance_msat: FUNDS, reserved_msat: 0n });
    expect((await vault.metrics()).authorizations_refused).toBe(refusedBefore + 1);
    expect(await vault.paymentStatus(depositId, params.idempotencyKey)).toBeNull();
  }

  it('pays a keysend to the granted node, and refuses another node and any invoice', async () => {
    const { party, depositId } = await user();
    const grant = signTestGrant(party, { destination: { type: 'keysend', node: devnet.payeeNodePubkey } });

    await expectRestricted(depositId, keysendTo(party, grant, devnet.operators[1]!.nodePubkey), /only a keysend to/);
    const invoice = devnet.createPayeeInvoice(AMOUNT).invoice;
    // An invoice of the very node the grant names is still not a keysend to it.
    await expectRestricted(depositId, { invoice, amountMsat: AMOUNT, maxFeeMsat: MAX_FEE, idempotencyKey: key(), authorization: payAuthorization(party, grant, invoice) }, /only a keysend to/);
    await expectRestricted(
      depositId,
      { invoice, amountMsat: AMOUNT, maxFeeMsat: MAX_FEE, idempotencyKey: key(), authorization: requestAuthorization(party, grant, 'pay', pay321Params({ payment: invoice })) },
      /only a keysend to/,
    );
    await expectRestricted(depositId, addressPay(party, grant, devnet.lightningAddress), /only a keysend to/);

    const paid = await vault.pay(depositId, keysendTo(party, grant, devnet.payeeNodePubkey));
    expect(paid).toMatchObject({ state: 'settled', kind: 'keysend', amount_msat: AMOUNT });
    expect(devnet.payeeKeysend(paid.payment_hash)).toMatchObject({ amountMsat: AMOUNT });
    expect((await vault.depositStatus(depositId)).balance_msat).toBe(FUNDS - AMOUNT - paid.fee_msat);
  });

  it('pays the granted lightning address, and refuses another one without asking its server', async () => {
    const { party, depositId } = await user();
    const granted = devnet.lightningAddress;
    const grant = signTestGrant(party, { destination: { type: 'lightning_address', address: granted } });
    const host = granted.slice(granted.indexOf('@') + 1);

    await expectRestricted(depositId, addressPay(party, grant, `thief@${strangerHost}`), /only the lightning address/);
    expect(strangerRequests).toEqual([]);
    // Same host, another name: the devnet would resolve it, the grant does not allow it.
    await expectRestricted(depositId, addressPay(party, grant, `someone@${host}`), /only the lightning address/);
    await expectRestricted(depositId, keysendTo(party, grant, devnet.payeeNodePubkey), /only the lightning address/);

    const paid = await vault.pay(depositId, addressPay(party, grant, granted.toUpperCase()));
    expect(paid).toMatchObject({ state: 'settled', kind: 'lnurl', amount_msat: AMOUNT });
    expect(devnet.payeeInvoiceStatus(paid.payment_hash)).toMatchObject({ state: 'settled', amountMsat: AMOUNT });
  });

  it('refuses a transfer under a destination grant, and a grant pairing a destination with rebalance', async () => {
    const { party, depositId } = await user();
    const [opA, opB] = [devnet.operators[0]!.nodePubkey, devnet.operators[1]!.nodePubkey];
    const other = clients[1]!;
    const depB = (await other.openDeposit(signDepositOpen(party.user.secretKey))).deposit_id;
    const issued = await other.createInvoice(depB, { amountMsat: AMOUNT });
    const mine: TransferDestination = { invoice: issued.invoice, proof: issued.proof, owner: issued.owner!, owner_sig: issued.owner_sig! };
    const destination = { type: 'keysend' as const, node: devnet.payeeNodePubkey };

    // A payment transfer prepared by an app request under a destination grant: a vault invoice is no keysend.
    const appGrant = signTestGrant(party, { destination });
    const payee = devnet.createPayeeInvoice(AMOUNT);
    const prepared = await vault
      .transfer(depositId, {
        destination: mine,
        amountMsat: AMOUNT,
        maxFeeMsat: MAX_FEE,
        idempotencyKey: key(),
        grant: appGrant,
        purpose: { type: 'payment', invoice: payee.invoice, authorization: payAuthorization(party, appGrant, payee.invoice) },
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(prepared).toMatchObject({ code: 'RESTRICTED', message: expect.stringMatching(/only a keysend to/) });

    const rebalancing = signTestGrant(party, { methods: ['pay_keysend', 'rebalance'], vaultOperators: [opA, opB], destination });
    const rebalanced = await vault
      .transfer(depositId, { destination: mine, amountMsat: AMOUNT, maxFeeMsat: MAX_FEE, idempotencyKey: key(), grant: rebalancing, purpose: { type: 'rebalance' } })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(rebalanced).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/cannot allow rebalancing/) });
    expect(await vault.depositStatus(depositId)).toMatchObject({ balance_msat: FUNDS, reserved_msat: 0n });
    expect((await other.depositStatus(depB)).balance_msat).toBe(0n);
  });
});
