/**
 * The `VaultClient` for v1 Bitcoin Deposits operators: the prototype's `DepositService` through
 * its REST gateway (docs/vault-api-v1.md). A v1 operator does whatever the holder of the deposit
 * key signs, spending included, so this client signs only with a `V1Signer` its caller holds
 * for that deposit (the user's own process); with none, every deposit call is refused before
 * anything is sent. What v1 lacks (hold invoices, grants, locks, metrics, events, keysend,
 * lightning addresses, multi-part shares, transfers to other operators) is refused with
 * RESTRICTED, never imitated. Amounts are bigint msats; every answer is parsed and checked.
 */
import { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { randomBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { msatString, msatToString } from '../protocol/amounts.ts';
import { bytesToHex, compressedPubkeyHex, hex32, hexToBytes } from '../protocol/hex.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
import type { VaultErrorCode } from '../protocol/result.ts';
import { verifyDepositOpen } from '../protocol/user-statements.ts';
import {
  networkSchema,
  type VaultDeposit,
  type VaultDepositHistory,
  type VaultDepositStatus,
  type VaultHistoryPayment,
  type VaultInfo,
  type VaultInvoice,
  type VaultPayment,
} from '../protocol/vault-api.ts';
import { isValidV1Signature, v1Digest, type V1Signer, type V1Value } from './v1-signing.ts';
import { VaultError, type CreateInvoiceParams, type EventSubscription, type PayParams, type TransferParams, type VaultClient } from './vault-client.ts';

export type { V1Signer } from './v1-signing.ts';

/**
 * `proof.peer_sig` of every invoice from a v1 operator: no signature. v1 has no channel peer
 * co-signing vault proofs; r = 0 is no point, so `verifyVaultProof` always refuses it.
 */
export const V1_UNSIGNED_PROOF = '0'.repeat(128);

export interface V1DepositServiceOptions {
  /** The operator's gateway base URL (requests go to `<url>/v1/deposits/<Method>`). */
  url: string;
  /** The deposit keys the caller holds, one per deposit (the deposit id is the key). None in the bridge. */
  signers?: readonly V1Signer[];
  /** A pin: refuse the operator if GetInfo names another node key. */
  nodePubkey?: string;
  /** Per-call timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** The clock, unix milliseconds (default `Date.now`). */
  now?: () => number;
  /** A fresh request nonce, 32 hex characters (default 16 random bytes). */
  nonce?: () => string;
}

const unix = z.number().int().nonnegative();
const ppm = z.number().int().min(0).max(1_000_000);

const v1InfoSchema = z.object({
  nodePubkey: compressedPubkeyHex,
  alias: z.string().max(64),
  peerPubkey: compressedPubkeyHex,
  network: networkSchema,
  blockHeight: z.number().int().nonnegative(),
  vaults: z.array(z.object({ vaultId: hex32, channelId: hex32, multisigPubkey: hex32 })).min(1),
  routingFeeBaseMsat: msatString,
  routingFeePpm: ppm,
  minInvoiceMsat: msatString,
  maxInvoiceMsat: msatString,
  maxDepositMsat: msatString,
  timestampWindowSeconds: z.number().int().positive(),
});
type V1Info = z.output<typeof v1InfoSchema>;

const preimageOf = (preimage: string, paymentHash: string) => bytesToHex(sha256(hexToBytes(preimage))) === paymentHash;

const v1DepositSchema = z.object({ pubkey: compressedPubkeyHex, vaultId: hex32, createdAt: unix });
const v1StatusSchema = z.object({ pubkey: compressedPubkeyHex, vaultId: hex32, balanceMsat: msatString, pendingMsat: msatString });

const v1InvoiceSchema = z
  .object({
    vaultId: hex32,
    paymentRequest: z.string().min(1).max(8192),
    paymentHash: hex32,
    /** The amount asked for ("0": any amount); once settled, the amount credited. */
    amountMsat: msatString,
    memo: z.string().max(639).optional(),
    descriptionHash: hex32.optional(),
    state: z.enum(['OPEN', 'SETTLED', 'EXPIRED']),
    createdAt: unix,
    expiresAt: unix,
    settledAt: unix.optional(),
    preimage: hex32.optional(),
  })
  .refine((i) => (i.state === 'SETTLED') === (i.settledAt !== undefined && i.preimage !== undefined), 'a settled invoice, and only one, has settledAt and preimage')
  .refine((i) => i.preimage === undefined || preimageOf(i.preimage, i.paymentHash), 'preimage does not hash to paymentHash');
type V1Invoice = z.output<typeof v1InvoiceSchema>;

const v1PaymentSchema = z
  .object({
    idempotencyKey: z.string().min(1).max(128),
    kind: z.enum(['PAYMENT', 'TRANSFER']),
    paymentRequest: z.string().min(1).max(8192),
    paymentHash: hex32,
    status: z.enum(['IN_FLIGHT', 'SUCCEEDED', 'FAILED']),
    amountMsat: msatString,
    maxFeeMsat: msatString,
    feeMsat: msatString,
    preimage: hex32.optional(),
    failureReason: z.string().max(1024).optional(),
    createdAt: unix,
    resolvedAt: unix.optional(),
  })
  .refine((p) => p.feeMsat <= p.maxFeeMsat, 'feeMsat above maxFeeMsat')
  .refine((p) => p.status === 'SUCCEEDED' || p.feeMsat === 0n, 'a fee on a payment that did not succeed')
  .refine((p) => (p.status === 'SUCCEEDED') === (p.preimage !== undefined), 'a succeeded payment, and only one, has a preimage')
  .refine((p) => p.preimage === undefined || preimageOf(p.preimage, p.paymentHash), 'preimage does not hash to paymentHash')
  .refine((p) => (p.status === 'IN_FLIGHT') === (p.resolvedAt === undefined), 'resolvedAt set exactly when resolved')
  .refine((p) => (p.status === 'FAILED') === (p.failureReason !== undefined), 'a failed payment, and only one, has a failureReason');
type V1Payment = z.output<typeof v1PaymentSchema>;

const v1DumpSchema = z.object({
  pubkey: compressedPubkeyHex,
  vaultId: hex32,
  balanceMsat: msatString,
  pendingMsat: msatString,
  invoices: z.array(v1InvoiceSchema),
  payments: z.array(v1PaymentSchema),
});
type V1Dump = z.output<typeof v1DumpSchema>;

/** grpc-gateway's error body: the gRPC status code and message. */
const v1ErrorSchema = z.object({ code: z.number().int(), message: z.string() });

/** gRPC status codes v1 operators answer with, as Vault API codes (docs/vault-api-v1.md, "Transport"). */
const GRPC_CODES: ReadonlyMap<number, VaultErrorCode> = new Map([
  [3, 'BAD_REQUEST'],
  [4, 'UNAVAILABLE'],
  [5, 'NOT_FOUND'],
  [6, 'REPLAYED'],
  [7, 'RESTRICTED'],
  [9, 'INSUFFICIENT_BALANCE'],
  [10, 'CONFLICT'],
  [14, 'UNAVAILABLE'],
  [16, 'UNAUTHORIZED'],
]);

type Method = 'GetInfo' | 'OpenDeposit' | 'GetDepositStatus' | 'CreateInvoice' | 'PayInvoice' | 'TransferToDeposit' | 'DumpDeposits';
/** Calls that change something at the operator: after a timeout their outcome is unknown. */
const WRITES: ReadonlySet<Method> = new Set(['OpenDeposit', 'CreateInvoice', 'PayInvoice', 'TransferToDeposit']);
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

const INVOICE_STATES = { OPEN: 'pending', SETTLED: 'settled', EXPIRED: 'expired' } as const;
const PAYMENT_STATES = { IN_FLIGHT: 'pending', SUCCEEDED: 'settled', FAILED: 'failed' } as const;

/**
 * A v1 operator behind `VaultClient`. Deposit ids are deposit keys (33-byte compressed hex);
 * a deposit's owner is the key's x coordinate (the user's Nostr key). Every method throws
 * `VaultError`: UNAUTHORIZED without a signer for the deposit, RESTRICTED for what v1 lacks,
 * INTERNAL for an answer that fails its checks.
 */
export class V1DepositServiceClient implements VaultClient {
  readonly url: string;
  readonly protocol = 'v1';
  readonly #signers: ReadonlyMap<string, V1Signer>;
  readonly #pin: string | undefined;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #nonce: () => string;
  #info: Promise<V1Info> | null = null;

  constructor(options: V1DepositServiceOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.#signers = new Map((options.signers ?? []).map((s) => [s.pubkey, s]));
    this.#pin = options.nodePubkey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#nonce = options.nonce ?? (() => bytesToHex(randomBytes(16)));
  }

  /** GetInfo (unsigned) in the v0 shape; v1 has no maintenance fees or auditors (zeros, empty). */
  async info(): Promise<VaultInfo> {
    const v1 = await this.#getInfo(true);
    return {
      version: '0',
      operator: { node_pubkey: v1.nodePubkey, alias: v1.alias },
      peer: { node_pubkey: v1.peerPubkey },
      network: v1.network,
      block_height: v1.blockHeight,
      vaults: v1.vaults.map((v) => ({ vault_id: v.vaultId, channel_id: v.channelId, multisig_pubkey: v.multisigPubkey })),
      fees: {
        routing_base_msat: v1.routingFeeBaseMsat,
        routing_ppm: v1.routingFeePpm,
        maintenance: { unit_fee_msat: 0n, period_blocks: 1, rate_fee_ppm: 0, rate_period_blocks: 1 },
      },
      limits: { min_invoice_msat: v1.minInvoiceMsat, max_invoice_msat: v1.maxInvoiceMsat, max_deposit_msat: v1.maxDepositMsat },
      auditors: [],
      request_max_age_seconds: v1.timestampWindowSeconds,
    };
  }

  /** OpenDeposit, signed by the deposit key whose x coordinate is the open statement's signer. */
  async openDeposit(open: Event): Promise<VaultDeposit> {
    const owner = verifyDepositOpen(open);
    if (!owner.ok) throw new VaultError(owner.error.code, `${this.url}: ${owner.error.message}`);
    const signer = [...this.#signers.values()].find((s) => s.pubkey.slice(2) === owner.value);
    if (signer === undefined) throw this.#noSigner(`owner ${owner.value}`);
    const answer = await this.#signed('OpenDeposit', signer, {}, v1DepositSchema, 'a deposit');
    this.#expect(answer.pubkey === signer.pubkey, 'OpenDeposit', 'the deposit of the signing key');
    const vault = await this.#vault(answer.vaultId, 'OpenDeposit');
    return {
      deposit_id: answer.pubkey,
      owner: owner.value,
      vault_id: vault.vaultId,
      channel_id: vault.channelId,
      multisig_pubkey: vault.multisigPubkey,
      address: `${vault.vaultId}@${vault.multisigPubkey}`,
      created_at: answer.createdAt,
    };
  }

  /** GetDepositStatus. v1 balances are the operator's word alone: `balance_update` is null, `locked` false. */
  async depositStatus(depositId: string): Promise<VaultDepositStatus> {
    const answer = await this.#signed('GetDepositStatus', this.#signer(depositId), {}, v1StatusSchema, 'a deposit status');
    this.#expect(answer.pubkey === depositId, 'GetDepositStatus', `the status of deposit ${depositId}`);
    return { deposit_id: depositId, owner: depositId.slice(2), balance_msat: answer.balanceMsat, reserved_msat: answer.pendingMsat, locked: false, balance_update: null };
  }

  /** DumpDeposits: the whole deposit at one instant. No signed balance, no maintenance, no event seq (0). */
  async depositHistory(depositId: string): Promise<VaultDepositHistory> {
    const dump = await this.#dump(depositId);
    const info = await this.#getInfo(false);
    const vault = await this.#vault(dump.vaultId, 'DumpDeposits');
    return {
      deposit_id: depositId,
      owner: depositId.slice(2),
      balance_msat: dump.balanceMsat,
      reserved_msat: dump.pendingMsat,
      balance_update: null,
      invoices: dump.invoices.map((i) => this.#invoice(depositId, i, info, vault, 'DumpDeposits')),
      payments: dump.payments.map((p): VaultHistoryPayment => ({ ...toPayment(p), finished_at: p.resolvedAt ?? null, transfer_purpose: null })),
      maintenance: [],
      events_seq: 0,
    };
  }

  /** CreateInvoice: a BOLT 11 signed by the operator's node, with an unsigned proof (`V1_UNSIGNED_PROOF`). */
  async createInvoice(depositId: string, params: CreateInvoiceParams): Promise<VaultInvoice> {
    const signer = this.#signer(depositId);
    const body: Record<string, V1Value> = {
      ...(params.amountMsat === undefined ? {} : { amountMsat: msatToString(params.amountMsat) }),
      ...(params.description === undefined ? {} : { memo: params.description }),
      ...(params.descriptionHash === undefined ? {} : { descriptionHash: params.descriptionHash }),
      ...(params.expirySeconds === undefined ? {} : { expirySeconds: params.expirySeconds }),
    };
    const answer = await this.#signed('CreateInvoice', signer, body, v1InvoiceSchema, 'an invoice');
    this.#expect(answer.amountMsat === (params.amountMsat ?? 0n) && answer.state === 'OPEN', 'CreateInvoice', 'an open invoice for the amount asked for');
    const info = await this.#getInfo(false);
    return this.#invoice(depositId, answer, info, await this.#vault(answer.vaultId, 'CreateInvoice'), 'CreateInvoice');
  }

  /** From DumpDeposits (v1 has no single-invoice lookup). NOT_FOUND when the deposit has no such invoice. */
  async invoiceStatus(depositId: string, paymentHash: string): Promise<VaultInvoice> {
    const history = await this.depositHistory(depositId);
    const invoice = history.invoices.find((i) => i.payment_hash === paymentHash);
    if (invoice === undefined) throw new VaultError('NOT_FOUND', `${this.url} DumpDeposits: no invoice ${paymentHash} in deposit ${depositId}`);
    return invoice;
  }

  /**
   * PayInvoice: a BOLT 11 only. The user-rooted `authorization` is not sent: a v1 operator
   * cannot check it, the deposit key's signature is all it asks for.
   */
  async pay(depositId: string, params: PayParams): Promise<VaultPayment> {
    if (params.invoice === undefined) throw this.#notOffered(params.keysend !== undefined ? 'keysend' : 'paying a lightning address');
    if (params.mpp !== undefined) throw this.#notOffered('a multi-part share');
    const signer = this.#signer(depositId);
    const body = {
      paymentRequest: params.invoice,
      amountMsat: msatToString(params.amountMsat),
      maxFeeMsat: msatToString(params.maxFeeMsat),
      idempotencyKey: params.idempotencyKey,
    };
    const answer = await this.#signed('PayInvoice', signer, body, v1PaymentSchema, 'a payment');
    this.#expect(
      answer.kind === 'PAYMENT' &&
        answer.idempotencyKey === params.idempotencyKey &&
        answer.paymentRequest === params.invoice &&
        answer.amountMsat === params.amountMsat &&
        answer.maxFeeMsat === params.maxFeeMsat,
      'PayInvoice',
      'the payment asked for',
    );
    return toPayment(answer);
  }

  /**
   * TransferToDeposit: pays an invoice of another deposit at this same operator, inside the
   * operator (no fee). Another operator's destination is RESTRICTED; the grant and purpose are
   * not sent (the deposit key's signature is the authorization).
   */
  async transfer(depositId: string, params: TransferParams): Promise<VaultPayment> {
    const signer = this.#signer(depositId);
    const info = await this.#getInfo(false);
    if (params.destination.proof.operator_node_pubkey !== info.nodePubkey) throw this.#notOffered("a transfer to another operator's vault");
    const body = { paymentRequest: params.destination.invoice, amountMsat: msatToString(params.amountMsat), idempotencyKey: params.idempotencyKey };
    const answer = await this.#signed('TransferToDeposit', signer, body, v1PaymentSchema, 'a transfer');
    this.#expect(
      answer.kind === 'TRANSFER' &&
        answer.idempotencyKey === params.idempotencyKey &&
        answer.paymentRequest === params.destination.invoice &&
        answer.amountMsat === params.amountMsat &&
        answer.feeMsat <= params.maxFeeMsat,
      'TransferToDeposit',
      'the transfer asked for, within its fee limit',
    );
    return toPayment(answer);
  }

  /** From DumpDeposits: the payment or transfer made under this key, or null when there is none. */
  async paymentStatus(depositId: string, idempotencyKey: string): Promise<VaultPayment | null> {
    const dump = await this.#dump(depositId);
    const payment = dump.payments.find((p) => p.idempotencyKey === idempotencyKey);
    return payment === undefined ? null : toPayment(payment);
  }

  createHoldInvoice(): Promise<VaultInvoice> {
    return Promise.reject(this.#notOffered('hold invoices'));
  }

  settleHoldInvoice(): Promise<VaultInvoice> {
    return Promise.reject(this.#notOffered('hold invoices'));
  }

  cancelHoldInvoice(): Promise<VaultInvoice> {
    return Promise.reject(this.#notOffered('hold invoices'));
  }

  pushGrant(): Promise<{ connection: string; createdAt: number }> {
    return Promise.reject(this.#notOffered('grants (v1 trusts the deposit key, not grants)'));
  }

  lock(): Promise<{ locked: boolean; createdAt: number }> {
    return Promise.reject(this.#notOffered('locking a deposit'));
  }

  metrics(): Promise<never> {
    return Promise.reject(this.#notOffered('metrics'));
  }

  /** Throws at once: v1 has no event stream (poll GetDepositStatus or DumpDeposits instead). */
  subscribeEvents(): EventSubscription {
    throw this.#notOffered('an event stream');
  }

  #invoice(depositId: string, i: V1Invoice, info: V1Info, vault: V1Info['vaults'][number], call: Method): VaultInvoice {
    const decoded = decodeInvoice(i.paymentRequest);
    this.#expect(
      decoded.ok && decoded.value.paymentHash === i.paymentHash && decoded.value.payeeNodeKey === info.nodePubkey && decoded.value.network === info.network,
      call,
      `invoice ${i.paymentHash} to be a BOLT 11 of the operator's node for its payment hash`,
    );
    const asked = decoded.ok ? (decoded.value.amountMsat ?? 0n) : 0n;
    this.#expect(i.state === 'SETTLED' ? asked === 0n || asked === i.amountMsat : asked === i.amountMsat, call, `invoice ${i.paymentHash} for the amount its BOLT 11 names`);
    return {
      invoice: i.paymentRequest,
      payment_hash: i.paymentHash,
      amount_msat: i.amountMsat,
      description: i.memo ?? null,
      description_hash: i.descriptionHash ?? null,
      created_at: i.createdAt,
      expires_at: i.expiresAt,
      state: INVOICE_STATES[i.state],
      settled_at: i.settledAt ?? null,
      preimage: i.preimage ?? null,
      proof: {
        deposit_id: depositId,
        vault_id: vault.vaultId,
        channel_id: vault.channelId,
        multisig_pubkey: vault.multisigPubkey,
        operator_node_pubkey: info.nodePubkey,
        peer_node_pubkey: info.peerPubkey,
        payment_hash: i.paymentHash,
        amount_msat: asked,
        peer_sig: V1_UNSIGNED_PROOF,
      },
      balance_update: null,
      hold: false,
    };
  }

  async #dump(depositId: string): Promise<V1Dump> {
    const dump = await this.#signed('DumpDeposits', this.#signer(depositId), {}, v1DumpSchema, 'a deposit dump');
    this.#expect(dump.pubkey === depositId, 'DumpDeposits', `the dump of deposit ${depositId}`);
    return dump;
  }

  #signer(depositId: string): V1Signer {
    const signer = this.#signers.get(depositId);
    if (signer === undefined) throw this.#noSigner(`deposit ${depositId}`);
    return signer;
  }

  #noSigner(what: string): VaultError {
    return new VaultError(
      'UNAUTHORIZED',
      `${this.url}: no V1Signer for ${what}: a v1 operator lets whoever holds the deposit key spend, so only the user's own process signs (the CLI with --user-key); the bridge holds no deposit keys`,
    );
  }

  #notOffered(what: string): VaultError {
    return new VaultError('RESTRICTED', `${this.url}: ${what} is not offered by v1 operators (docs/vault-api-v1.md)`);
  }

  /** An answer that is not what was asked for: for a write, the operator may have acted anyway. */
  #expect(condition: boolean, call: Method, expected: string): asserts condition {
    if (!condition) throw new VaultError('INTERNAL', `${this.url} ${call}: expected ${expected}`, { outcomeUnknown: WRITES.has(call) });
  }

  /** GetInfo, cached; `refresh` asks again. A failed ask is not cached. */
  #getInfo(refresh: boolean): Promise<V1Info> {
    const cached = this.#info;
    if (cached !== null && !refresh) return cached;
    const asked = this.#post('GetInfo', {}, v1InfoSchema, 'operator info').then((info) => {
      if (this.#pin !== undefined && info.nodePubkey !== this.#pin) {
        throw new VaultError('UNAUTHORIZED', `${this.url} GetInfo: node key ${info.nodePubkey} is not the pinned ${this.#pin}`);
      }
      return info;
    });
    this.#info = asked;
    asked.catch(() => {
      if (this.#info === asked) this.#info = null;
    });
    return asked;
  }

  /** The vault GetInfo lists under `vaultId`, asking GetInfo again once if it is new. */
  async #vault(vaultId: string, call: Method): Promise<V1Info['vaults'][number]> {
    const find = (info: V1Info) => info.vaults.find((v) => v.vaultId === vaultId);
    const vault = find(await this.#getInfo(false)) ?? find(await this.#getInfo(true));
    this.#expect(vault !== undefined, call, `vault ${vaultId} to be one GetInfo lists`);
    return vault;
  }

  /** Signs and sends one call: the operator's node key, a nonce and the time are signed with the rest. */
  async #signed<S extends z.ZodType>(method: Method, signer: V1Signer, params: Record<string, V1Value>, schema: S, expected: string): Promise<z.output<S>> {
    const info = await this.#getInfo(false);
    const fields = { ...params, pubkey: signer.pubkey, operator: info.nodePubkey, nonce: this.#nonce() };
    const timestamp = Math.floor(this.#now() / 1000);
    const digest = v1Digest(method, timestamp, fields);
    const signature = await signer.sign(digest);
    if (!isValidV1Signature(signature, digest, signer.pubkey)) {
      throw new VaultError('UNAUTHORIZED', `${this.url} ${method}: the V1Signer for ${signer.pubkey} gave no valid low-S signature by that key; nothing was sent`);
    }
    return this.#post(method, { ...fields, timestamp, signature: bytesToHex(signature) }, schema, expected);
  }

  async #post<S extends z.ZodType>(method: Method, body: object, schema: S, expected: string): Promise<z.output<S>> {
    const call = `${this.url} ${method}`;
    const write = WRITES.has(method);
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.url}/v1/deposits/${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      const code = causeCode(error);
      const notSent = !timedOut && code !== undefined && NOT_SENT_CODES.has(code);
      const reason = timedOut ? `timed out after ${this.#timeoutMs} ms` : `unreachable (${code ?? (error instanceof Error ? error.message : 'network error')})`;
      throw new VaultError('UNAVAILABLE', `${call}: ${reason}`, { outcomeUnknown: write && !notSent, cause: error });
    }
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      // handled below: not the answer nor the error body
    }
    if (!response.ok) {
      const status = response.status;
      const error = v1ErrorSchema.safeParse(json);
      const code: VaultErrorCode = error.success ? (GRPC_CODES.get(error.data.code) ?? 'INTERNAL') : status === 502 || status === 503 || status === 504 ? 'UNAVAILABLE' : 'INTERNAL';
      const message = error.success ? error.data.message : `HTTP ${status} without a gateway error body`;
      // A replay refusal of a request this client sent once means it arrived before: it may have acted.
      const unknown = write && (status >= 500 || code === 'INTERNAL' || code === 'REPLAYED');
      throw new VaultError(code, `${call}: ${message}`, { status, outcomeUnknown: unknown });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
      throw new VaultError('INTERNAL', `${call}: expected ${expected}; invalid${where}: ${issue?.message ?? 'not JSON'}`, { status: response.status, outcomeUnknown: write });
    }
    return parsed.data;
  }
}

function toPayment(p: V1Payment): VaultPayment {
  return {
    idempotency_key: p.idempotencyKey,
    payment_hash: p.paymentHash,
    state: PAYMENT_STATES[p.status],
    amount_msat: p.amountMsat,
    max_fee_msat: p.maxFeeMsat,
    fee_msat: p.feeMsat,
    preimage: p.preimage ?? null,
    failure_reason: p.failureReason ?? null,
    failure_code: null,
    created_at: p.createdAt,
    settled_at: p.status === 'SUCCEEDED' ? (p.resolvedAt ?? null) : null,
    balance_update: null,
    kind: p.kind === 'TRANSFER' ? 'transfer' : 'invoice',
    invoice: p.paymentRequest,
    mpp_total_msat: null,
  };
}

/** The `code` of an error or of the first cause that has one (undici wraps socket errors). */
function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    if ('code' in current && typeof current.code === 'string') return current.code;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}
