/**
 * One valid payment request, mutated one field at a time. The request (grant + app request +
 * conversation key + body) is built the same way for every row, on a fresh user with a fresh
 * funded deposit; the first test proves the operator accepts it. Each row changes one thing
 * and must be refused by the vault with its own code and reason, before any balance change:
 * no payment row, nothing reserved, and the refusal counted in /v0/metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, type Event } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { DEFAULT_FEE_LIMIT, feeLimitFor } from '../../src/protocol/amounts.ts';
import { buildAuthorization } from '../../src/protocol/authorization.ts';
import type { GrantTerms } from '../../src/protocol/grant.ts';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { signEvent } from '../../src/protocol/nostr-event.ts';
import { sharedKey } from '../../src/protocol/nwc-encryption.ts';
import type { VaultErrorCode } from '../../src/protocol/result.ts';
import { signDepositLock } from '../../src/protocol/user-statements.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { InvoicePayParams } from '../../src/vault-client/vault-client.ts';
import { newKeypair, newParty, PAYING_GRANT_METHODS, signPayRequest, signTestGrant, type NwcParty, type RequestOptions } from '../helpers/authorization.ts';
import { fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

const SAT = 1000n;
const FUNDS = 100_000n * SAT;
const AMOUNT = 10_000n * SAT;
/** The grant's fee limit for AMOUNT (the default, max(10 sat, 1 %)). */
const MAX_FEE = feeLimitFor(AMOUNT, DEFAULT_FEE_LIMIT);
/** How long before the request the base grant was signed. */
const GRANT_AGE = 60;

const now = () => Math.floor(Date.now() / 1000);

/** The valid request and what it was made of, so a row can change exactly one part. */
interface ValidRequest {
  party: NwcParty;
  depositId: string;
  /** An amountless payee invoice: the amount paid is the one the app signed in `params.amount`. */
  invoice: string;
  terms: Partial<GrantTerms>;
  grantCreatedAt: number;
  grant: Event;
  requestOptions: RequestOptions;
  request: Event;
  key: Uint8Array;
  params: InvoicePayParams;
}

interface Mutation {
  field: string;
  /** What the row changes. */
  change: string;
  code: VaultErrorCode;
  /** The refusal message, to prove the intended check is the one that refused. */
  reason: RegExp;
  /** Setup (done before the snapshot) and the mutated request. */
  mutate: (valid: ValidRequest, ctx: { vault: HttpVaultClient; devnet: Devnet }) => Promise<InvoicePayParams> | InvoicePayParams;
}

/** The same request with the grant re-signed by the user (or `signer`) with some terms changed. */
function withGrant(valid: ValidRequest, overrides: Partial<GrantTerms>, createdAt = valid.grantCreatedAt, signer = valid.party.user): InvoicePayParams {
  const grant = signTestGrant(valid.party, { ...valid.terms, ...overrides }, createdAt, signer);
  return { ...valid.params, authorization: { ...valid.params.authorization, grant } };
}

/** The same payment with the app's request re-signed by the app with some options changed. */
function withRequest(valid: ValidRequest, options: RequestOptions): InvoicePayParams {
  const { request, key } = signPayRequest(valid.party, valid.invoice, { ...valid.requestOptions, ...options });
  return { ...valid.params, authorization: buildAuthorization(valid.grant, request, 'nip44_v2', key) };
}

function withRequestEvent(valid: ValidRequest, request: Event): InvoicePayParams {
  return { ...valid.params, authorization: { ...valid.params.authorization, request } };
}

/** Flips the low bit of the byte at `index` of a hex string. */
function flipHexByte(hex: string, index: number): string {
  const bytes = hexToBytes(hex);
  bytes[index] = (bytes[index] ?? 0) ^ 0x01;
  return bytesToHex(bytes);
}

/** Flips the low bit of one byte in the middle of a base64 ciphertext (past NIP-44's version byte). */
function flipCiphertextByte(content: string): string {
  const bytes = Buffer.from(content, 'base64');
  const index = Math.floor(bytes.length / 2);
  bytes[index] = (bytes[index] ?? 0) ^ 0x01;
  return bytes.toString('base64');
}

const MUTATIONS: Mutation[] = [
  {
    field: 'grant signer',
    change: 'the grant is signed by another key than the deposit owner',
    code: 'UNAUTHORIZED',
    reason: /grant is not signed by the deposit owner/,
    mutate: (v) => withGrant(v, {}, v.grantCreatedAt, newKeypair()),
  },
  {
    field: 'grant target',
    change: 'the grant names another connection key',
    code: 'UNAUTHORIZED',
    reason: /request is not signed by the granted connection key/,
    mutate: (v) => ({
      ...v.params,
      authorization: { ...v.params.authorization, grant: signTestGrant({ ...v.party, connection: newKeypair() }, v.terms, v.grantCreatedAt) },
    }),
  },
  {
    field: 'request signature',
    change: 'one byte of the request signature flipped',
    code: 'UNAUTHORIZED',
    reason: /request signature is invalid/,
    mutate: (v) => withRequestEvent(v, { ...v.request, sig: flipHexByte(v.request.sig, 7) }),
  },
  {
    field: 'ciphertext',
    change: 'one byte of the encrypted content flipped, nothing re-signed',
    code: 'UNAUTHORIZED',
    reason: /request signature is invalid/,
    mutate: (v) => withRequestEvent(v, { ...v.request, content: flipCiphertextByte(v.request.content) }),
  },
  {
    field: 'ciphertext (re-signed)',
    change: 'one byte of the encrypted content flipped and the event re-signed by the app: the MAC fails',
    code: 'UNAUTHORIZED',
    reason: /request content does not decrypt with the given key/,
    mutate: (v) => {
      const { kind, created_at, tags, content } = v.request;
      return withRequestEvent(v, signEvent({ kind, created_at, tags, content: flipCiphertextByte(content) }, v.party.connection.secretKey));
    },
  },
  {
    field: 'conversation key',
    change: 'the key is the conversation key of the connection with another service key',
    code: 'UNAUTHORIZED',
    reason: /request content does not decrypt with the given key/,
    mutate: (v) => ({
      ...v.params,
      authorization: { ...v.params.authorization, key: bytesToHex(sharedKey('nip44_v2', v.party.connection.secretKey, newKeypair().pubkey)) },
    }),
  },
  {
    field: 'amount',
    change: 'the body pays 1 sat more than the app signed',
    code: 'UNAUTHORIZED',
    reason: /the amount being paid is not the one the app signed/,
    mutate: (v) => ({ ...v.params, amountMsat: AMOUNT + SAT }),
  },
  {
    field: 'invoice',
    change: 'the body pays another invoice than the app signed',
    code: 'UNAUTHORIZED',
    reason: /the invoice being paid is not the one the app signed/,
    mutate: (v, { devnet }) => ({ ...v.params, invoice: devnet.createPayeeInvoice(null).invoice }),
  },
  {
    field: 'created_at',
    change: 'the request is dated 301 s ago (re-signed by the app)',
    code: 'EXPIRED',
    reason: /request is too old/,
    mutate: (v) => withRequest(v, { createdAt: now() - 301 }),
  },
  {
    field: 'request id',
    change: 'the same request again under a new idempotency key, after it paid once',
    code: 'REPLAYED',
    reason: /already spent under another idempotency key/,
    mutate: async (v, { vault }) => {
      const first = await vault.pay(v.depositId, v.params);
      expect(first.state).toBe('settled');
      return { ...v.params, idempotencyKey: bytesToHex(generateSecretKey()) };
    },
  },
  {
    field: 'budget',
    change: 'the grant budget is 1 msat short of amount + fee limit',
    code: 'QUOTA_EXCEEDED',
    reason: /budget exceeded/,
    mutate: (v) => withGrant(v, { budget: { amountMsat: AMOUNT + MAX_FEE - 1n, renewal: 'daily' } }),
  },
  {
    field: 'per-payment maximum',
    change: "the grant's max_amount_msat is 1 msat below the amount",
    code: 'QUOTA_EXCEEDED',
    reason: /above this connection's maximum/,
    mutate: (v) => withGrant(v, { maxAmountMsat: AMOUNT - 1n }),
  },
  {
    field: 'fee limit',
    change: "max_fee_msat 1 msat above the grant's fee limit for the amount",
    code: 'FEE_LIMIT',
    reason: /fee limit 100001 msat is above the grant's 100000 msat/,
    mutate: (v) => ({ ...v.params, maxFeeMsat: MAX_FEE + 1n }),
  },
  {
    field: 'velocity',
    change: 'the grant allows 1 msat less an hour than the amount',
    code: 'QUOTA_EXCEEDED',
    reason: /velocity exceeded: at most 9999999 msat an hour/,
    mutate: (v) => withGrant(v, { velocity: { paymentsPerHour: 10, amountMsatPerHour: AMOUNT - 1n } }),
  },
  {
    field: 'lock',
    change: 'the owner locked their deposits (signed lock statement)',
    code: 'LOCKED',
    reason: /the owner has locked their deposits/,
    mutate: async (v, { vault }) => {
      expect(await vault.lock(v.depositId, signDepositLock(v.party.user.secretKey, true))).toMatchObject({ locked: true });
      return v.params;
    },
  },
  {
    field: 'grant expiry',
    change: 'the grant expired 1 s ago',
    code: 'EXPIRED',
    reason: /the connection grant has expired/,
    mutate: (v) => withGrant(v, { expiresAt: now() - 1 }),
  },
  {
    field: 'grant revoked (pushed)',
    change: 'a newer grant with revoked: true was pushed to the vault',
    code: 'STALE_GRANT',
    reason: /a newer grant for this connection is known/,
    mutate: async (v, { vault }) => {
      await vault.pushGrant(v.depositId, signTestGrant(v.party, { ...v.terms, revoked: true }, v.grantCreatedAt + 1));
      return v.params;
    },
  },
  {
    field: 'grant revoked (presented)',
    change: 'the grant presented is the revocation itself',
    code: 'UNAUTHORIZED',
    reason: /the connection was revoked by its owner/,
    mutate: (v) => withGrant(v, { revoked: true }),
  },
  {
    field: 'grant created_at',
    change: 'the grant is dated 120 s in the future',
    code: 'BAD_REQUEST',
    reason: /the grant is dated in the future/,
    mutate: (v) => withGrant(v, {}, now() + 120),
  },
  {
    field: 'vault operators',
    change: 'the grant allows only another operator',
    code: 'RESTRICTED',
    reason: /the grant does not allow this vault operator/,
    mutate: (v, { devnet }) => withGrant(v, { vaultOperators: [devnet.operators[1]?.nodePubkey ?? ''] }),
  },
  {
    field: 'methods',
    change: 'the grant does not include pay_invoice',
    code: 'RESTRICTED',
    reason: /method pay_invoice is not granted/,
    mutate: (v) => withGrant(v, { methods: PAYING_GRANT_METHODS.filter((m) => m !== 'pay_invoice') }),
  },
  {
    field: 'expiration tag',
    change: 'the request expired 1 s ago (re-signed by the app)',
    code: 'EXPIRED',
    reason: /request has expired/,
    mutate: (v) => withRequest(v, { expiration: now() - 1 }),
  },
  {
    field: 'expiration tag (not a number)',
    change: 'the request carries expiration "tomorrow" (re-signed by the app)',
    code: 'EXPIRED',
    reason: /request has expired/,
    mutate: (v) => withRequest(v, { expiration: 'tomorrow' }),
  },
];

describe('one valid payment request, mutated one field at a time', () => {
  let devnet: Devnet;
  let vault: HttpVaultClient;

  beforeAll(async () => {
    devnet = await startTestDevnet({ operators: 2, operatorPorts: [0, 0], paymentWaitMs: 300 });
    vault = new HttpVaultClient({ url: devnet.operators[0]?.url ?? '', secretKey: generateSecretKey() });
  });
  afterAll(async () => {
    await devnet.stop();
  });

  /** The valid request, on a fresh user with a freshly funded deposit at vault-a. */
  const validRequest = async (): Promise<ValidRequest> => {
    const party = newParty();
    const depositId = await fundedDeposit(devnet, vault, party.user, FUNDS);
    const invoice = devnet.createPayeeInvoice(null).invoice;
    const t = now();
    const terms: Partial<GrantTerms> = {
      budget: { amountMsat: 10n * AMOUNT, renewal: 'daily' },
      maxAmountMsat: 2n * AMOUNT,
      feeLimit: DEFAULT_FEE_LIMIT,
      expiresAt: t + 3600,
      vaultOperators: [devnet.operators[0]?.nodePubkey ?? ''],
      velocity: { paymentsPerHour: 10, amountMsatPerHour: 10n * AMOUNT },
    };
    const grantCreatedAt = t - GRANT_AGE;
    const grant = signTestGrant(party, terms, grantCreatedAt);
    const requestOptions: RequestOptions = { amountMsat: AMOUNT, expiration: t + 600 };
    const { request, key } = signPayRequest(party, invoice, requestOptions);
    const params: InvoicePayParams = {
      invoice,
      amountMsat: AMOUNT,
      maxFeeMsat: MAX_FEE,
      idempotencyKey: bytesToHex(generateSecretKey()),
      authorization: buildAuthorization(grant, request, 'nip44_v2', key),
    };
    return { party, depositId, invoice, terms, grantCreatedAt, grant, requestOptions, request, key, params };
  };

  it('accepts the valid request on a fresh deposit (the control row)', async () => {
    const valid = await validRequest();
    const refused = (await vault.metrics()).authorizations_refused;
    const payment = await vault.pay(valid.depositId, valid.params);
    expect(payment).toMatchObject({ state: 'settled', amount_msat: AMOUNT });
    expect(payment.fee_msat).toBeLessThanOrEqual(MAX_FEE);
    expect(await vault.depositStatus(valid.depositId)).toMatchObject({ balance_msat: FUNDS - AMOUNT - payment.fee_msat, reserved_msat: 0n });
    expect((await vault.metrics()).authorizations_refused).toBe(refused);
  });

  it('has one row per mutation, each with its own field', () => {
    expect(new Set(MUTATIONS.map((m) => m.field)).size).toBe(MUTATIONS.length);
  });

  it.each(MUTATIONS)('$field: $change → $code', async ({ code, reason, mutate }) => {
    const valid = await validRequest();
    const params = await mutate(valid, { vault, devnet });
    const before = await vault.depositStatus(valid.depositId);
    const metricsBefore = await vault.metrics();

    const error = await vault.pay(valid.depositId, params).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code, message: expect.stringMatching(reason) });

    // Refused before any balance change: no payment under this key, nothing reserved, same signed balance.
    expect(await vault.paymentStatus(valid.depositId, params.idempotencyKey)).toBeNull();
    expect(await vault.depositStatus(valid.depositId)).toEqual(before);
    const metrics = await vault.metrics();
    expect(metrics.authorizations_refused).toBe(metricsBefore.authorizations_refused + 1);
    expect([metrics.payments_settled, metrics.payments_failed, metrics.total_balance_msat]).toEqual([
      metricsBefore.payments_settled,
      metricsBefore.payments_failed,
      metricsBefore.total_balance_msat,
    ]);
  });
});
