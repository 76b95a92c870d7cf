/**
 * A simulated v1 Bitcoin Deposits operator (docs/vault-api-v1.md) over real HTTP on 127.0.0.1:
 * in-memory deposits, BOLT 11 invoices signed by its node key, a payee network the test feeds,
 * and the checks a v1 operator makes before anything else: the request names this operator,
 * its timestamp is within 300 s of the operator's clock, the deposit key signed it (low-S), and
 * the same signed request was not seen before. Its canonical JSON is its own, not the client's,
 * so a disagreement about the signed bytes shows as a refusal.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { buildInvoice, newPaymentSecrets } from '../../src/devnet/lightning-network.ts';
import { bytesToHex, hexToBytes } from '../../src/protocol/hex.ts';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import { vaultMultisigPubkey } from '../../src/protocol/vault-proof.ts';

const WINDOW_SECONDS = 300;
const MAX_MSAT = 2_100_000_000_000_000_000n;
const ROUTING_BASE_MSAT = 1_000n;
const ROUTING_PPM = 1_000n;

/** gRPC status codes and the HTTP status grpc-gateway sends them with. */
const HTTP_STATUS: Record<number, number> = { 3: 400, 5: 404, 6: 409, 9: 400, 10: 409, 12: 501, 13: 500, 16: 401 };

class GrpcError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

type Json = Record<string, unknown>;

interface Invoice {
  owner: string;
  paymentRequest: string;
  paymentHash: string;
  /** Secret until settled. */
  preimage: string;
  amountMsat: bigint;
  memo: string | undefined;
  descriptionHash: string | undefined;
  state: 'OPEN' | 'SETTLED';
  createdAt: number;
  expiresAt: number;
  settledAt: number | undefined;
}

interface Payment {
  fingerprint: string;
  idempotencyKey: string;
  kind: 'PAYMENT' | 'TRANSFER';
  paymentRequest: string;
  paymentHash: string;
  status: 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED';
  amountMsat: bigint;
  maxFeeMsat: bigint;
  feeMsat: bigint;
  preimage: string | undefined;
  failureReason: string | undefined;
  createdAt: number;
  resolvedAt: number | undefined;
}

interface Deposit {
  pubkey: string;
  createdAt: number;
  balanceMsat: bigint;
  pendingMsat: bigint;
  invoices: Invoice[];
  payments: Map<string, Payment>;
}

export interface V1DepositServer {
  url: string;
  nodePubkey: string;
  vaultId: string;
  /** Every HTTP request, any method and path, before anything is read: who called it at all (`received` has only the v1 routes). */
  readonly requests: { method: string; path: string }[];
  /** Every request body received, in order, before any check (for replays and signature checks). */
  readonly received: { method: string; body: Json }[];
  /** The signed calls that passed every check: method and deposit key. */
  readonly verified: { method: string; pubkey: string }[];
  /** Seconds added to the operator's clock. */
  clockOffsetSeconds: number;
  /** Payments stay IN_FLIGHT (reserving amount + fee limit) instead of settling at once. */
  holdPayments: boolean;
  /** Rewrites an answer before it is sent: a lying or broken operator. */
  tamper: ((method: string, answer: Json) => unknown) | null;
  /** A payer outside pays an open invoice of a deposit: credits it (`amountMsat` for an amountless one). */
  credit(paymentHash: string, amountMsat?: bigint): void;
  /** An invoice of a node outside the operator, which the network pays when asked. */
  payee(amountMsat: bigint | null): { paymentRequest: string; paymentHash: string };
  /** Posts a raw body to a method, as an attacker resending a captured request would. */
  send(method: string, body: unknown): Promise<{ status: number; json: unknown }>;
  stop(): Promise<void>;
}

/** Starts the simulated operator on a random port. */
export async function startV1DepositServer(): Promise<V1DepositServer> {
  const nodeSecret = secp256k1.utils.randomSecretKey();
  const payeeSecret = secp256k1.utils.randomSecretKey();
  const nodePubkey = bytesToHex(secp256k1.getPublicKey(nodeSecret, true));
  const peerPubkey = bytesToHex(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true));
  const vaultId = bytesToHex(randomBytes(32));
  const channelId = bytesToHex(randomBytes(32));
  const deposits = new Map<string, Deposit>();
  /** Payment hash → preimage of invoices outside that the network can pay. */
  const network = new Map<string, string>();
  /** Signed digests seen → when they leave the window. */
  const seen = new Map<string, number>();

  const state: Omit<V1DepositServer, 'url' | 'send' | 'stop'> = {
    nodePubkey,
    vaultId,
    requests: [],
    received: [],
    verified: [],
    clockOffsetSeconds: 0,
    holdPayments: false,
    tamper: null,
    credit(paymentHash, amountMsat) {
      const found = findInvoice((i) => i.paymentHash === paymentHash);
      if (found === undefined || found.invoice.state !== 'OPEN') throw new Error(`no open invoice ${paymentHash}`);
      const amount = found.invoice.amountMsat === 0n ? amountMsat : found.invoice.amountMsat;
      if (amount === undefined) throw new Error('an amountless invoice needs an amount');
      settleInvoice(found.deposit, found.invoice, amount);
    },
    payee(amountMsat) {
      const secrets = newPaymentSecrets();
      network.set(secrets.paymentHash, secrets.preimage);
      const paymentRequest = buildInvoice({
        nodeSecret: payeeSecret,
        amountMsat,
        paymentHash: secrets.paymentHash,
        paymentSecret: secrets.paymentSecret,
        description: 'payee outside',
        descriptionHash: null,
        timestamp: now(),
        expirySeconds: 3600,
      });
      return { paymentRequest, paymentHash: secrets.paymentHash };
    },
  };

  const now = () => Math.floor(Date.now() / 1000) + state.clockOffsetSeconds;

  function fail(code: number, message: string): never {
    throw new GrpcError(code, message);
  }

  function findInvoice(match: (invoice: Invoice) => boolean): { invoice: Invoice; deposit: Deposit } | undefined {
    for (const deposit of deposits.values()) {
      const invoice = deposit.invoices.find(match);
      if (invoice) return { invoice, deposit };
    }
    return undefined;
  }

  function settleInvoice(deposit: Deposit, invoice: Invoice, amount: bigint): void {
    invoice.state = 'SETTLED';
    invoice.amountMsat = amount;
    invoice.settledAt = now();
    deposit.balanceMsat += amount;
  }

  const canonical = (value: unknown): string =>
    Array.isArray(value)
      ? `[${value.map(canonical).join(',')}]`
      : typeof value === 'object' && value !== null
        ? `{${Object.entries(value)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
            .join(',')}}`
        : JSON.stringify(value);

  const text = (body: Json, key: string, pattern: RegExp): string => {
    const value = body[key];
    if (typeof value !== 'string' || !pattern.test(value)) fail(3, `invalid ${key}`);
    return value;
  };
  const optionalText = (body: Json, key: string, pattern: RegExp): string | undefined => (body[key] === undefined ? undefined : text(body, key, pattern));
  const msat = (body: Json, key: string): bigint => {
    const amount = BigInt(text(body, key, /^(0|[1-9][0-9]{0,20})$/));
    if (amount > MAX_MSAT) fail(3, `${key} larger than all bitcoin`);
    return amount;
  };

  /** The checks before any method: returns the deposit key that signed. */
  function authenticate(method: string, body: Json): string {
    const { timestamp, signature, ...signed } = body;
    const pubkey = text(body, 'pubkey', /^0[23][0-9a-f]{64}$/);
    text(body, 'nonce', /^[0-9a-f]{32}$/);
    if (signed.operator !== nodePubkey) fail(16, 'the request is signed for another operator');
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) fail(3, 'invalid timestamp');
    if (Math.abs(now() - timestamp) > WINDOW_SECONDS) fail(16, `timestamp ${timestamp} is more than ${WINDOW_SECONDS} s from the operator's clock`);
    if (typeof signature !== 'string' || !/^[0-9a-f]{128}$/.test(signature)) fail(16, 'invalid signature');
    const digest = sha256(new TextEncoder().encode(`${method}\n${timestamp}\n${canonical(signed)}`));
    let valid = false;
    try {
      valid = secp256k1.verify(hexToBytes(signature), digest, hexToBytes(pubkey), { prehash: false, lowS: true });
    } catch {
      valid = false;
    }
    if (!valid) fail(16, 'signature does not verify for the deposit key');
    for (const [key, expires] of seen) if (expires < now()) seen.delete(key);
    const id = bytesToHex(digest);
    if (seen.has(id)) fail(6, 'replayed request');
    seen.set(id, timestamp + WINDOW_SECONDS);
    state.verified.push({ method, pubkey });
    return pubkey;
  }

  const invoiceJson = (i: Invoice): Json => ({
    vaultId,
    paymentRequest: i.paymentRequest,
    paymentHash: i.paymentHash,
    amountMsat: i.amountMsat.toString(),
    ...(i.memo === undefined ? {} : { memo: i.memo }),
    ...(i.descriptionHash === undefined ? {} : { descriptionHash: i.descriptionHash }),
    state: i.state === 'OPEN' && i.expiresAt <= now() ? 'EXPIRED' : i.state,
    createdAt: i.createdAt,
    expiresAt: i.expiresAt,
    ...(i.state === 'SETTLED' ? { settledAt: i.settledAt, preimage: i.preimage } : {}),
  });

  const paymentJson = (p: Payment): Json => ({
    idempotencyKey: p.idempotencyKey,
    kind: p.kind,
    paymentRequest: p.paymentRequest,
    paymentHash: p.paymentHash,
    status: p.status,
    amountMsat: p.amountMsat.toString(),
    maxFeeMsat: p.maxFeeMsat.toString(),
    feeMsat: p.feeMsat.toString(),
    ...(p.preimage === undefined ? {} : { preimage: p.preimage }),
    ...(p.failureReason === undefined ? {} : { failureReason: p.failureReason }),
    createdAt: p.createdAt,
    ...(p.resolvedAt === undefined ? {} : { resolvedAt: p.resolvedAt }),
  });

  const statusJson = (d: Deposit): Json => ({ pubkey: d.pubkey, vaultId, balanceMsat: d.balanceMsat.toString(), pendingMsat: d.pendingMsat.toString() });

  /** An earlier payment under this key: the same one again answers it, another is a conflict. */
  function existing(deposit: Deposit, key: string, fingerprint: string): Payment | undefined {
    const known = deposit.payments.get(key);
    if (known && known.fingerprint !== fingerprint) fail(10, `idempotency key ${key} was used for another payment`);
    return known;
  }

  function route(method: string, body: Json): Json {
    if (method === 'GetInfo') {
      return {
        nodePubkey,
        alias: 'v1-sim',
        peerPubkey,
        network: 'regtest',
        blockHeight: 200,
        vaults: [{ vaultId, channelId, multisigPubkey: vaultMultisigPubkey(nodePubkey, peerPubkey, channelId, vaultId) }],
        routingFeeBaseMsat: ROUTING_BASE_MSAT.toString(),
        routingFeePpm: Number(ROUTING_PPM),
        minInvoiceMsat: '1000',
        maxInvoiceMsat: MAX_MSAT.toString(),
        maxDepositMsat: MAX_MSAT.toString(),
        timestampWindowSeconds: WINDOW_SECONDS,
      };
    }
    if (!['OpenDeposit', 'GetDepositStatus', 'CreateInvoice', 'PayInvoice', 'TransferToDeposit', 'DumpDeposits'].includes(method)) fail(12, `unknown method ${method}`);
    const pubkey = authenticate(method, body);
    if (method === 'OpenDeposit') {
      const deposit = deposits.get(pubkey) ?? { pubkey, createdAt: now(), balanceMsat: 0n, pendingMsat: 0n, invoices: [], payments: new Map() };
      deposits.set(pubkey, deposit);
      return { pubkey, vaultId, createdAt: deposit.createdAt };
    }
    const deposit = deposits.get(pubkey) ?? fail(5, 'no deposit for this key');
    switch (method) {
      case 'GetDepositStatus':
        return statusJson(deposit);
      case 'DumpDeposits':
        return { ...statusJson(deposit), invoices: deposit.invoices.map(invoiceJson), payments: [...deposit.payments.values()].map(paymentJson) };
      case 'CreateInvoice': {
        const amount = body.amountMsat === undefined ? 0n : msat(body, 'amountMsat');
        if (body.amountMsat !== undefined && amount < 1000n) fail(3, 'amountMsat below the minimum');
        const memo = optionalText(body, 'memo', /^[\s\S]{0,639}$/);
        const descriptionHash = optionalText(body, 'descriptionHash', /^[0-9a-f]{64}$/);
        const expiry = body.expirySeconds === undefined ? 3600 : body.expirySeconds;
        if (typeof expiry !== 'number' || !Number.isSafeInteger(expiry) || expiry <= 0) fail(3, 'invalid expirySeconds');
        const secrets = newPaymentSecrets();
        const createdAt = now();
        const invoice: Invoice = {
          owner: pubkey,
          paymentRequest: buildInvoice({
            nodeSecret,
            amountMsat: amount === 0n ? null : amount,
            paymentHash: secrets.paymentHash,
            paymentSecret: secrets.paymentSecret,
            description: memo ?? (descriptionHash === undefined ? '' : null),
            descriptionHash: descriptionHash ?? null,
            timestamp: createdAt,
            expirySeconds: expiry,
          }),
          paymentHash: secrets.paymentHash,
          preimage: secrets.preimage,
          amountMsat: amount,
          memo,
          descriptionHash,
          state: 'OPEN',
          createdAt,
          expiresAt: createdAt + expiry,
          settledAt: undefined,
        };
        deposit.invoices.push(invoice);
        return invoiceJson(invoice);
      }
      case 'PayInvoice': {
        const paymentRequest = text(body, 'paymentRequest', /^ln[a-z0-9]+$/);
        const amount = msat(body, 'amountMsat');
        const maxFee = msat(body, 'maxFeeMsat');
        const key = text(body, 'idempotencyKey', /^.{1,128}$/);
        const known = existing(deposit, key, `PAY|${paymentRequest}|${amount}|${maxFee}`);
        if (known) return paymentJson(known);
        const decoded = decodeInvoice(paymentRequest);
        if (!decoded.ok || decoded.value.network !== 'regtest') fail(3, 'not a regtest BOLT 11 invoice');
        if (decoded.value.payeeNodeKey === nodePubkey) fail(3, 'an invoice of this operator: use TransferToDeposit');
        if (amount === 0n || (decoded.value.amountMsat !== null && decoded.value.amountMsat !== amount)) fail(3, 'amountMsat is not the invoice amount');
        if (deposit.balanceMsat - deposit.pendingMsat < amount + maxFee) fail(9, 'insufficient balance');
        const fee = ROUTING_BASE_MSAT + (amount * ROUTING_PPM) / 1_000_000n;
        const preimage = network.get(decoded.value.paymentHash);
        const base = { fingerprint: `PAY|${paymentRequest}|${amount}|${maxFee}`, idempotencyKey: key, kind: 'PAYMENT' as const, paymentRequest, paymentHash: decoded.value.paymentHash, amountMsat: amount, maxFeeMsat: maxFee, createdAt: now() };
        let payment: Payment;
        if (state.holdPayments) {
          payment = { ...base, status: 'IN_FLIGHT', feeMsat: 0n, preimage: undefined, failureReason: undefined, resolvedAt: undefined };
          deposit.pendingMsat += amount + maxFee;
        } else if (preimage === undefined || fee > maxFee) {
          payment = { ...base, status: 'FAILED', feeMsat: 0n, preimage: undefined, failureReason: preimage === undefined ? 'no route' : 'fee limit exceeded', resolvedAt: now() };
        } else {
          payment = { ...base, status: 'SUCCEEDED', feeMsat: fee, preimage, failureReason: undefined, resolvedAt: now() };
          deposit.balanceMsat -= amount + fee;
        }
        deposit.payments.set(key, payment);
        return paymentJson(payment);
      }
      case 'TransferToDeposit': {
        const paymentRequest = text(body, 'paymentRequest', /^ln[a-z0-9]+$/);
        const amount = msat(body, 'amountMsat');
        const key = text(body, 'idempotencyKey', /^.{1,128}$/);
        const known = existing(deposit, key, `TRANSFER|${paymentRequest}|${amount}`);
        if (known) return paymentJson(known);
        const target = findInvoice((i) => i.paymentRequest === paymentRequest);
        if (target === undefined || target.deposit === deposit) fail(5, 'not an invoice of another deposit at this operator');
        if (target.invoice.state !== 'OPEN' || target.invoice.expiresAt <= now()) fail(3, 'the invoice is not open');
        if (amount === 0n || (target.invoice.amountMsat !== 0n && target.invoice.amountMsat !== amount)) fail(3, 'amountMsat is not the invoice amount');
        if (deposit.balanceMsat - deposit.pendingMsat < amount) fail(9, 'insufficient balance');
        deposit.balanceMsat -= amount;
        settleInvoice(target.deposit, target.invoice, amount);
        const payment: Payment = {
          fingerprint: `TRANSFER|${paymentRequest}|${amount}`,
          idempotencyKey: key,
          kind: 'TRANSFER',
          paymentRequest,
          paymentHash: target.invoice.paymentHash,
          status: 'SUCCEEDED',
          amountMsat: amount,
          maxFeeMsat: 0n,
          feeMsat: 0n,
          preimage: target.invoice.preimage,
          failureReason: undefined,
          createdAt: now(),
          resolvedAt: now(),
        };
        deposit.payments.set(key, payment);
        return paymentJson(payment);
      }
      default:
        return fail(12, `unknown method ${method}`);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    state.requests.push({ method: req.method ?? '', path: req.url ?? '' });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const match = /^\/v1\/deposits\/([A-Za-z]+)$/.exec(req.url ?? '');
    if (req.method !== 'POST' || match === null) return reply(404, { code: 5, message: 'no such route', details: [] });
    const method = match[1] ?? '';
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return reply(400, { code: 3, message: 'body is not JSON', details: [] });
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return reply(400, { code: 3, message: 'body is not a JSON object', details: [] });
    const json: Json = Object.fromEntries(Object.entries(body));
    state.received.push({ method, body: json });
    try {
      const answer = route(method, json);
      reply(200, state.tamper ? state.tamper(method, answer) : answer);
    } catch (error) {
      if (!(error instanceof GrpcError)) return reply(500, { code: 13, message: 'internal error', details: [] });
      reply(HTTP_STATUS[error.code] ?? 500, { code: error.code, message: error.message, details: [] });
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return Object.assign(state, {
    url,
    async send(method: string, body: unknown) {
      const response = await fetch(`${url}/v1/deposits/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: response.status, json: await response.json() };
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  });
}
