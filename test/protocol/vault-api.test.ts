import { describe, expect, it } from 'vitest';
import { KIND } from '../../src/protocol/kinds.ts';
import { NIP47_CODE_FOR_VAULT_ERROR, Nip47Error } from '../../src/protocol/nip47-error.ts';
import { VAULT_ERROR_CODES, type VaultErrorCode } from '../../src/protocol/result.ts';
import {
  createHoldInvoiceRequestSchema,
  createInvoiceRequestSchema,
  PAYMENT_FAILURE_CODES,
  settleInvoiceRequestSchema,
  depositSchema,
  depositStatusSchema,
  errorBodySchema,
  payRequestSchema,
  VAULT_ERROR_STATUS,
  vaultEventSchema,
  vaultInfoSchema,
  vaultInvoiceSchema,
  vaultMetricsSchema,
  vaultPaymentSchema,
} from '../../src/protocol/vault-api.ts';
import { readVector } from '../vectors/generate.ts';

const authorizations = readVector<{ valid: { authorization: Record<string, unknown>; payment: { invoice: string } }[] }>('authorizations.json');
const proofs = readVector<{ invoice: string; vault_proof: { proof: Record<string, unknown> }; balance_update: { update: Record<string, unknown> } }>('vault-proofs.json');
const authorizationCase = authorizations.valid[0]!;
const balanceUpdate = proofs.balance_update.update;
const hash = 'ab'.repeat(32);

/** The GET /v0/info example of docs/vault-api.md, filled in. */
const info = {
  version: '0',
  operator: { node_pubkey: '02' + '11'.repeat(32), alias: 'vault-a' },
  peer: { node_pubkey: '03' + '22'.repeat(32) },
  network: 'regtest',
  block_height: 120,
  vaults: [{ vault_id: '33'.repeat(32), channel_id: '44'.repeat(32), multisig_pubkey: '55'.repeat(32) }],
  fees: { routing_base_msat: '1000', routing_ppm: 1000, maintenance: { unit_fee_msat: '1000', period_blocks: 144, rate_fee_ppm: 2700, rate_period_blocks: 52_560 } },
  limits: { min_invoice_msat: '1000', max_invoice_msat: '4294967295000', max_deposit_msat: '10000000000000' },
  auditors: ['66'.repeat(32)],
  request_max_age_seconds: 300,
};

describe('vaultInfoSchema', () => {
  it('accepts the documented example and parses amounts to bigint', () => {
    const parsed = vaultInfoSchema.parse(info);
    expect(parsed.fees.routing_base_msat).toBe(1000n);
    expect(parsed.limits.max_invoice_msat).toBe(4_294_967_295_000n);
  });

  it.each<[string, unknown]>([
    ['an amount as a JSON number', { ...info, fees: { ...info.fees, routing_base_msat: 1000 } }],
    ['a limit with a leading zero', { ...info, limits: { ...info.limits, min_invoice_msat: '01000' } }],
    ['an unknown network', { ...info, network: 'liquid' }],
    ['another API version', { ...info, version: '1' }],
    ['no vaults', { ...info, vaults: [] }],
    ['an x-only operator key', { ...info, operator: { ...info.operator, node_pubkey: '11'.repeat(32) } }],
    ['routing ppm as a fraction', { ...info, fees: { ...info.fees, routing_ppm: 0.1 } }],
  ])('refuses %s', (_, body) => {
    expect(vaultInfoSchema.safeParse(body).success).toBe(false);
  });
});

describe('payRequestSchema', () => {
  const body = {
    invoice: authorizationCase.payment.invoice,
    amount_msat: '50000',
    max_fee_msat: '10000',
    idempotency_key: '77'.repeat(32),
    authorization: authorizationCase.authorization,
  };

  it('accepts a payment body with a signed authorization, amounts as strings parsed to bigint', () => {
    const parsed = payRequestSchema.parse(body);
    expect(parsed.amount_msat).toBe(50_000n);
    expect(parsed.max_fee_msat).toBe(10_000n);
  });

  it.each<[string, unknown]>([
    ['an amount as a JSON number', { ...body, amount_msat: 50000 }],
    ['a fee limit as a JSON number', { ...body, max_fee_msat: 10000 }],
    ['a negative amount', { ...body, amount_msat: '-50000' }],
    ['an amount with a fraction', { ...body, amount_msat: '50000.5' }],
    ['an empty idempotency key', { ...body, idempotency_key: '' }],
    ['an empty invoice', { ...body, invoice: '' }],
    ['no authorization', { ...body, authorization: undefined }],
    ['an authorization with an unknown field', { ...body, authorization: { ...authorizationCase.authorization, share: {} } }],
    ['no invoice, keysend or lnurl', { ...body, invoice: undefined }],
    ['an invoice and a keysend', { ...body, keysend: { destination: '02' + '11'.repeat(32) } }],
    ['an invoice and a lightning address', { ...body, lnurl: { address: 'a@b.example' } }],
    ['a keysend to an x-only key', { ...body, invoice: undefined, keysend: { destination: '11'.repeat(32) } }],
    ['a keysend with an unknown field', { ...body, invoice: undefined, keysend: { destination: '02' + '11'.repeat(32), route: [] } }],
    ['a keysend TLV type below 2^16', { ...body, invoice: undefined, keysend: { destination: '02' + '11'.repeat(32), tlv_records: [{ type: '1', value: '00' }] } }],
    ['a keysend preimage of 31 bytes', { ...body, invoice: undefined, keysend: { destination: '02' + '11'.repeat(32), preimage: '11'.repeat(31) } }],
    ['a lightning address with an unknown field', { ...body, invoice: undefined, lnurl: { address: 'a@b.example', pr: 'lnbc1' } }],
  ])('refuses %s', (_, b) => {
    expect(payRequestSchema.safeParse(b).success).toBe(false);
  });

  it('accepts a keysend with its preimage and TLV records (types as decimal strings or numbers), or a lightning address', () => {
    const keysend = payRequestSchema.parse({
      ...body,
      invoice: undefined,
      keysend: { destination: '03' + '22'.repeat(32), preimage: hash, tlv_records: [{ type: '18446744073709551615', value: 'AB' }, { type: 7629169, value: '' }] },
    });
    expect(keysend.keysend?.tlv_records).toEqual([
      { type: 7_629_169n, value: '' },
      { type: 18_446_744_073_709_551_615n, value: 'ab' },
    ]);
    expect(payRequestSchema.parse({ ...body, invoice: undefined, lnurl: { address: 'alice@example.com' } }).lnurl).toEqual({ address: 'alice@example.com' });
  });
});

describe('hold invoice requests', () => {
  it('need an amount and a payment hash; the CLTV delta is 1 to 2016 blocks', () => {
    expect(createHoldInvoiceRequestSchema.parse({ amount_msat: '1000', payment_hash: hash, min_cltv_expiry_delta: 144 })).toMatchObject({ amount_msat: 1000n, min_cltv_expiry_delta: 144 });
    expect(createHoldInvoiceRequestSchema.safeParse({ payment_hash: hash }).success).toBe(false);
    expect(createHoldInvoiceRequestSchema.safeParse({ amount_msat: '1000' }).success).toBe(false);
    expect(createHoldInvoiceRequestSchema.safeParse({ amount_msat: '1000', payment_hash: hash, min_cltv_expiry_delta: 0 }).success).toBe(false);
    expect(createHoldInvoiceRequestSchema.safeParse({ amount_msat: '1000', payment_hash: hash, min_cltv_expiry_delta: 2017 }).success).toBe(false);
    expect(settleInvoiceRequestSchema.safeParse({ preimage: hash }).success).toBe(true);
    expect(settleInvoiceRequestSchema.safeParse({ preimage: hash.toUpperCase() }).success).toBe(false);
  });
});

describe('deposit, invoice and payment responses', () => {
  it('depositSchema accepts a deposit', () => {
    expect(
      depositSchema.safeParse({
        deposit_id: 'dep_1',
        owner: hash,
        vault_id: hash,
        channel_id: hash,
        multisig_pubkey: hash,
        address: `${hash}@${hash}`,
        created_at: 1,
      }).success,
    ).toBe(true);
  });

  it('depositStatusSchema parses balances to bigint and takes a signed balance update or null', () => {
    const status = { deposit_id: 'dep_0001', owner: hash, balance_msat: '21000', reserved_msat: '0', locked: false, balance_update: balanceUpdate };
    const parsed = depositStatusSchema.parse(status);
    expect(parsed.balance_msat).toBe(21_000n);
    expect(parsed.balance_update?.balance_msat).toBe(21_000n);
    expect(depositStatusSchema.safeParse({ ...status, balance_update: null }).success).toBe(true);
    expect(depositStatusSchema.safeParse({ ...status, reserved_msat: 0 }).success).toBe(false);
  });

  const invoice = {
    invoice: proofs.invoice,
    payment_hash: hash,
    amount_msat: '21000',
    description: 'deposit',
    description_hash: null,
    created_at: 1,
    expires_at: 3601,
    state: 'pending',
    settled_at: null,
    preimage: null,
    proof: proofs.vault_proof.proof,
    balance_update: null,
  };

  it('vaultInvoiceSchema accepts a pending invoice with its vault proof', () => {
    const parsed = vaultInvoiceSchema.parse(invoice);
    expect(parsed.proof.amount_msat).toBe(21_000n);
    expect(parsed.hold).toBeUndefined();
  });

  it('vaultInvoiceSchema accepts the hold invoice states and fields', () => {
    const held = { ...invoice, state: 'accepted', hold: true, accepted_at: 2, settle_deadline: 245, min_cltv_expiry_delta: 144, canceled_at: null };
    expect(vaultInvoiceSchema.parse(held)).toMatchObject({ state: 'accepted', hold: true, settle_deadline: 245 });
    expect(vaultInvoiceSchema.parse({ ...held, state: 'canceled', canceled_at: 3 }).state).toBe('canceled');
  });

  it.each<[string, unknown]>([
    ['an unknown state', { ...invoice, state: 'paid' }],
    ['no proof', { ...invoice, proof: undefined }],
    ['a proof with the amount as a number', { ...invoice, proof: { ...proofs.vault_proof.proof, amount_msat: 21000 } }],
    ['hold as a string', { ...invoice, hold: 'true' }],
    ['a fractional settle deadline', { ...invoice, state: 'accepted', settle_deadline: 1.5 }],
  ])('vaultInvoiceSchema refuses %s', (_, body) => {
    expect(vaultInvoiceSchema.safeParse(body).success).toBe(false);
  });

  const payment = {
    idempotency_key: 'k1',
    payment_hash: hash,
    state: 'settled',
    amount_msat: '21000',
    max_fee_msat: '10000',
    fee_msat: '12',
    preimage: hash,
    failure_reason: null,
    created_at: 1,
    settled_at: 2,
    balance_update: balanceUpdate,
  };

  it('vaultPaymentSchema accepts a settled payment', () => {
    expect(vaultPaymentSchema.parse(payment).fee_msat).toBe(12n);
  });

  it('vaultPaymentSchema refuses an unknown state', () => {
    expect(vaultPaymentSchema.safeParse({ ...payment, state: 'unknown' }).success).toBe(false);
  });

  it('vaultPaymentSchema takes a failure code (optional for older operators), the kind, the invoice and destination', () => {
    const failed = { ...payment, state: 'failed', preimage: null, fee_msat: '0', settled_at: null, failure_reason: 'no route' };
    expect(vaultPaymentSchema.parse(failed).failure_code).toBeUndefined();
    for (const code of PAYMENT_FAILURE_CODES) expect(vaultPaymentSchema.parse({ ...failed, failure_code: code }).failure_code).toBe(code);
    expect(PAYMENT_FAILURE_CODES).toEqual(['FEE_LIMIT_EXCEEDED', 'NO_ROUTE', 'INVOICE_EXPIRED', 'ALREADY_PAID', 'REJECTED']);
    expect(vaultPaymentSchema.safeParse({ ...failed, failure_code: 'TIMEOUT' }).success).toBe(false);
    expect(vaultPaymentSchema.parse({ ...payment, kind: 'keysend', invoice: null, destination: '02' + '11'.repeat(32) })).toMatchObject({ kind: 'keysend', invoice: null });
    expect(vaultPaymentSchema.safeParse({ ...payment, kind: 'onchain' }).success).toBe(false);
  });

  it('createInvoiceRequestSchema bounds the expiry to one year; without an amount the invoice is amountless', () => {
    expect(createInvoiceRequestSchema.safeParse({ amount_msat: '1000', expiry_seconds: 31_536_000 }).success).toBe(true);
    expect(createInvoiceRequestSchema.safeParse({ amount_msat: '1000', expiry_seconds: 31_536_001 }).success).toBe(false);
    expect(createInvoiceRequestSchema.safeParse({ amount_msat: '1000', expiry_seconds: 0 }).success).toBe(false);
    expect(createInvoiceRequestSchema.parse({ description: 'no amount' })).toEqual({ description: 'no amount' });
    expect(createInvoiceRequestSchema.safeParse({ amount_msat: 1000 }).success).toBe(false);
  });

  it('vaultMetricsSchema parses totals to bigint', () => {
    const metrics = vaultMetricsSchema.parse({
      started_at: 1,
      deposits: 2,
      total_balance_msat: '42000',
      reserve_msat: '50000',
      invoices_settled: 2,
      payments_settled: 0,
      payments_failed: 0,
      authorizations_refused: 1,
    });
    expect(metrics.total_balance_msat).toBe(42_000n);
  });
});

describe('vaultEventSchema', () => {
  const settled = { seq: 1, type: 'invoice_settled', deposit_id: 'dep_0001', payment_hash: hash, amount_msat: '21000', preimage: hash, settled_at: 2, balance_update: balanceUpdate };

  it('accepts each event type', () => {
    expect(vaultEventSchema.safeParse(settled).success).toBe(true);
    expect(
      vaultEventSchema.safeParse({
        seq: 2,
        type: 'payment_settled',
        deposit_id: 'dep_0001',
        idempotency_key: 'k1',
        payment_hash: hash,
        amount_msat: '1000',
        fee_msat: '1',
        preimage: hash,
        balance_update: balanceUpdate,
      }).success,
    ).toBe(true);
    expect(
      vaultEventSchema.safeParse({ seq: 3, type: 'payment_failed', deposit_id: 'dep_0001', idempotency_key: 'k2', payment_hash: hash, failure_reason: 'no route', balance_update: null })
        .success,
    ).toBe(true);
    expect(vaultEventSchema.safeParse({ seq: 4, type: 'lock_changed', deposit_id: 'dep_0001', locked: true }).success).toBe(true);
    expect(
      vaultEventSchema.parse({ seq: 5, type: 'hold_invoice_accepted', deposit_id: 'dep_0001', payment_hash: hash, amount_msat: '7000', settle_deadline: 245 }),
    ).toMatchObject({ amount_msat: 7000n, settle_deadline: 245 });
    expect(vaultEventSchema.safeParse({ seq: 6, type: 'invoice_canceled', deposit_id: 'dep_0001', payment_hash: hash }).success).toBe(true);
    expect(
      vaultEventSchema.parse({ seq: 7, type: 'payment_failed', deposit_id: 'dep_0001', idempotency_key: 'k3', payment_hash: hash, failure_reason: 'x', failure_code: 'NO_ROUTE', balance_update: null }),
    ).toMatchObject({ failure_code: 'NO_ROUTE' });
  });

  it.each<[string, unknown]>([
    ['an unknown type', { ...settled, type: 'invoice_paid' }],
    ['a settled invoice without its preimage', { ...settled, preimage: undefined }],
    ['a settled invoice without a balance update', { ...settled, balance_update: null }],
    ['a zero seq', { ...settled, seq: 0 }],
    ['an amount as a JSON number', { ...settled, amount_msat: 21000 }],
    ['an accepted hold invoice without its deadline', { seq: 5, type: 'hold_invoice_accepted', deposit_id: 'd', payment_hash: hash, amount_msat: '1' }],
    ['an unknown failure code', { seq: 3, type: 'payment_failed', deposit_id: 'd', idempotency_key: 'k', payment_hash: hash, failure_reason: 'x', failure_code: 'OOPS', balance_update: null }],
  ])('refuses %s', (_, body) => {
    expect(vaultEventSchema.safeParse(body).success).toBe(false);
  });
});

describe('errors', () => {
  it('sends each code with the status in the docs/vault-api.md table', () => {
    const documented: Record<VaultErrorCode, number> = {
      BAD_REQUEST: 400,
      WRONG_NETWORK: 400,
      INVOICE_EXPIRED: 400,
      UNAUTHORIZED: 401,
      SESSION_EXPIRED: 401,
      INSUFFICIENT_BALANCE: 402,
      RESTRICTED: 403,
      EXPIRED: 403,
      QUOTA_EXCEEDED: 403,
      FEE_LIMIT: 403,
      NOT_FOUND: 404,
      REPLAYED: 409,
      STALE_GRANT: 409,
      CONFLICT: 409,
      LOCKED: 423,
      INTERNAL: 500,
      UNAVAILABLE: 503,
    };
    expect(VAULT_ERROR_STATUS).toEqual(documented);
    expect([...VAULT_ERROR_CODES].sort()).toEqual(Object.keys(documented).sort());
  });

  it('errorBodySchema accepts a known code and refuses an unknown one', () => {
    expect(errorBodySchema.safeParse({ error: { code: 'LOCKED', message: 'deposits are locked' } }).success).toBe(true);
    expect(errorBodySchema.safeParse({ error: { code: 'TEAPOT', message: 'no' } }).success).toBe(false);
    expect(errorBodySchema.safeParse({ error: 'LOCKED' }).success).toBe(false);
  });
});

describe('NIP-47 codes for vault errors', () => {
  it('answers each vault code with the NIP-47 code in the docs/vault-api.md table', () => {
    expect(NIP47_CODE_FOR_VAULT_ERROR).toEqual({
      BAD_REQUEST: 'BAD_REQUEST',
      WRONG_NETWORK: 'BAD_REQUEST',
      INVOICE_EXPIRED: 'BAD_REQUEST',
      UNAUTHORIZED: 'UNAUTHORIZED',
      SESSION_EXPIRED: 'INTERNAL',
      INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
      RESTRICTED: 'RESTRICTED',
      EXPIRED: 'EXPIRED',
      QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
      FEE_LIMIT: 'RESTRICTED',
      NOT_FOUND: 'NOT_FOUND',
      REPLAYED: 'RESTRICTED',
      STALE_GRANT: 'UNAUTHORIZED',
      CONFLICT: 'INTERNAL',
      LOCKED: 'RESTRICTED',
      INTERNAL: 'INTERNAL',
      UNAVAILABLE: 'INTERNAL',
    });
  });

  it('Nip47Error carries its code and message', () => {
    const error = new Nip47Error('QUOTA_EXCEEDED', 'budget exceeded');
    expect(error).toBeInstanceOf(Error);
    expect([error.name, error.code, error.message]).toEqual(['Nip47Error', 'QUOTA_EXCEEDED', 'budget exceeded']);
  });
});

describe('event kinds', () => {
  it('are the NIPs\' kinds and the ones in the docs/vault-api.md statement table', () => {
    expect(KIND).toEqual({
      nwcInfo: 13194,
      nwcRequest: 23194,
      nwcResponse: 23195,
      nwcNotificationNip04: 23196,
      nwcNotification: 23197,
      httpAuth: 27235,
      grant: 31347,
      depositOpen: 21348,
      depositLock: 31349,
      auditorReport: 31350,
    });
  });
});
