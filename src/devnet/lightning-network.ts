/**
 * A simulated Lightning network for the devnet: nodes with persistent secp256k1 keys, BOLT 11
 * invoices signed by their node, keysend payments to a node, and payments that are in flight
 * for a moment and then settle (the payee hands over the preimage) or fail with a reason and a
 * failure code. A payee may hold a payment (a hold invoice) and settle or fail it later. A
 * payment leaving a node pays that node's routing fee; a payment to the paying node itself
 * pays none. Blocks come every ten minutes of wall time, or on demand (`mineBlocks`).
 *
 * Multi-part payments (BOLT 4 `basic_mpp`): a part names the invoice's total; the payee's side
 * of the network holds parts until their sum reaches the total, then hands the payee one
 * payment of the total and settles or fails every part together. A set whose total does not
 * arrive within `mppTimeoutMs` fails as a whole; nothing of it is credited.
 */
import bolt11 from 'bolt11';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { DatabaseSync } from 'node:sqlite';
import type { Msat } from '../protocol/amounts.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
import type { TlvRecord } from '../protocol/nwc-request.ts';
import type { PaymentFailureCode } from '../protocol/vault-api.ts';
import { int, openDatabase, text } from './sqlite.ts';

/** bolt11's network object for regtest (`lnbcrt`). */
const REGTEST = { bech32: 'bcrt', pubKeyHash: 111, scriptHash: 196, validWitnessVersions: [0, 1] };

/** What a node charges for a payment it sends: base + amount × ppm / 10^6, rounded down. */
export interface RoutingPolicy {
  baseMsat: Msat;
  ppm: number;
}

export function routingFee(policy: RoutingPolicy, amountMsat: Msat): Msat {
  return policy.baseMsat + (amountMsat * BigInt(policy.ppm)) / 1_000_000n;
}

export function nodePubkeyOf(secret: Uint8Array): string {
  return bytesToHex(secp256k1.getPublicKey(secret, true));
}

export function paymentHashOf(preimage: Uint8Array): string {
  return bytesToHex(sha256(preimage));
}

export interface InvoiceParams {
  nodeSecret: Uint8Array;
  /** Null for an amountless invoice. */
  amountMsat: Msat | null;
  paymentHash: string;
  paymentSecret: string;
  /** Exactly one of description and descriptionHash goes into the invoice; description wins. */
  description: string | null;
  descriptionHash: string | null;
  timestamp: number;
  expirySeconds: number;
  /** The min_final_cltv_expiry tag (default 80, LND's). */
  minFinalCltvExpiry?: number;
  /** Whether the invoice allows multi-part payments (the basic_mpp feature; default true). */
  basicMpp?: boolean;
}

/** Min final CLTV delta written into devnet invoices (LND's default). */
const MIN_FINAL_CLTV_EXPIRY = 80;

/** Builds and signs a regtest BOLT 11 invoice with payment secret, var_onion and (unless `basicMpp` is false) basic_mpp. */
export function buildInvoice(p: InvoiceParams): string {
  const purpose =
    p.description === null && p.descriptionHash !== null
      ? { tagName: 'purpose_commit_hash', data: p.descriptionHash }
      : { tagName: 'description', data: p.description ?? '' };
  const unsigned = bolt11.encode(
    {
      network: REGTEST,
      ...(p.amountMsat === null ? {} : { millisatoshis: p.amountMsat.toString() }),
      timestamp: p.timestamp,
      tags: [
        { tagName: 'payment_hash', data: p.paymentHash },
        { tagName: 'payment_secret', data: p.paymentSecret },
        purpose,
        { tagName: 'expire_time', data: p.expirySeconds },
        { tagName: 'min_final_cltv_expiry', data: p.minFinalCltvExpiry ?? MIN_FINAL_CLTV_EXPIRY },
        {
          tagName: 'feature_bits',
          data: {
            word_length: 4,
            var_onion_optin: { required: true },
            payment_secret: { required: true },
            ...(p.basicMpp === false ? {} : { basic_mpp: { supported: true } }),
          },
        },
      ],
    },
    false,
  );
  const signed = bolt11.sign(unsigned, Buffer.from(p.nodeSecret));
  if (!signed.paymentRequest) throw new Error('bolt11 did not produce a payment request');
  return signed.paymentRequest;
}

/** A fresh preimage, its payment hash and a payment secret, as hex. */
export function newPaymentSecrets(): { preimage: string; paymentHash: string; paymentSecret: string } {
  const preimage = randomBytes(32);
  return { preimage: bytesToHex(preimage), paymentHash: paymentHashOf(preimage), paymentSecret: bytesToHex(randomBytes(32)) };
}

/** A payee's final answer: the preimage, or a refusal with its reason and failure code. */
export type FinalReceiveOutcome = { ok: true; preimage: string } | { ok: false; reason: string; code?: PaymentFailureCode };

/**
 * What a payee answers an incoming payment: final, or `held` (a hold invoice): the payment
 * stays in flight until the payee calls `LightningNetwork.resolveHeld`.
 */
export type ReceiveOutcome = FinalReceiveOutcome | { ok: 'held' };

/** An incoming payment as the payee sees it; `keysend` is set for a keysend (no invoice). */
export interface IncomingPayment {
  paymentHash: string;
  amountMsat: Msat;
  keysend: { preimage: string; tlvRecords: readonly TlvRecord[] } | null;
}

/** A node as the network sees it. */
export interface NetworkNode {
  policy: RoutingPolicy;
  /** False while the node is offline: nothing routes to it and it sends nothing. */
  online(): boolean;
  /**
   * Takes an incoming payment for one of the node's invoices (or a keysend): checks and
   * records it durably, synchronously, and hands out the preimage, refuses with a reason, or
   * holds it.
   */
  receive(payment: IncomingPayment): ReceiveOutcome;
}

export type SendRequest =
  | {
      payerPubkey: string;
      invoice: string;
      /** The amount to deliver; null means the invoice's own amount. */
      amountMsat: Msat | null;
      /** The most the payer pays in routing fees; null for no limit. */
      maxFeeMsat: Msat | null;
      /**
       * A part of a multi-part payment: `amountMsat` is this part, `totalMsat` what all parts
       * together deliver (the invoice's amount). The invoice must allow `basic_mpp`.
       */
      mpp?: { totalMsat: Msat };
      keysend?: undefined;
    }
  | {
      payerPubkey: string;
      keysend: { destination: string; preimage: string; tlvRecords: readonly TlvRecord[] };
      amountMsat: Msat;
      maxFeeMsat: Msat | null;
      invoice?: undefined;
    };

export type PaymentOutcome =
  | { state: 'settled'; paymentHash: string; amountMsat: Msat; feeMsat: Msat; preimage: string }
  | { state: 'failed'; paymentHash: string | null; reason: string; code: PaymentFailureCode };

/** A route found up to a payee that holds the payment: what to answer once it decides. */
type Routed = PaymentOutcome | { held: string; complete: (outcome: FinalReceiveOutcome) => PaymentOutcome };

interface HeldPayment {
  complete(outcome: FinalReceiveOutcome): void;
  dropped: (() => void) | null;
}

/** One part of a multi-part set waiting at the payee's side for the rest. */
interface MppPart {
  amountMsat: Msat;
  complete: (received: FinalReceiveOutcome) => PaymentOutcome;
  deliver: (outcome: PaymentOutcome) => void;
  dropped: (() => void) | null;
}

/** The parts of one payment hash collected for a payee until they reach the total. */
interface MppSet {
  payeePubkey: string;
  paymentHash: string;
  totalMsat: Msat;
  receivedMsat: Msat;
  parts: MppPart[];
  timer: NodeJS.Timeout;
}

/**
 * How long a payee waits for the rest of a multi-part set. Real nodes wait 60 s (BOLT 4's
 * suggestion); the devnet's payees wait 10 s, so a test of a failing part ends sooner.
 */
export const DEFAULT_MPP_TIMEOUT_MS = 10_000;

/** Block height at genesis; regtest wallets start just past coinbase maturity. */
const GENESIS_HEIGHT = 101;
const BLOCK_INTERVAL_MS = 600_000;

export interface LightningNetworkOptions {
  /** SQLite file for node keys and the chain's genesis; null keeps them in memory. */
  dbPath: string | null;
  /** How long a payment is in flight before it settles or fails. */
  settleDelayMs?: number;
  /** How long a payee waits for the rest of a multi-part payment (default 10 s). */
  mppTimeoutMs?: number;
}

export class LightningNetwork {
  readonly #db: DatabaseSync;
  readonly #nodes = new Map<string, NetworkNode>();
  /** Payments in flight, with what to tell a waiting caller if the network closes first. */
  readonly #inFlight = new Map<NodeJS.Timeout, (() => void) | null>();
  /** Payments a payee holds, by `payee:payment_hash`. */
  readonly #held = new Map<string, HeldPayment>();
  readonly #blockListeners = new Set<(height: number) => void>();
  /** Multi-part sets still collecting, by `payee:payment_hash`. */
  readonly #mppSets = new Map<string, MppSet>();
  /** How long a payee waits for all parts of a multi-part payment before failing them all. */
  mppTimeoutMs: number;
  readonly #settleDelayMs: number;
  readonly #genesisMs: number;
  #minedBlocks: number;

  constructor(options: LightningNetworkOptions) {
    this.#db = openDatabase(options.dbPath);
    this.#settleDelayMs = options.settleDelayMs ?? 20;
    this.mppTimeoutMs = options.mppTimeoutMs ?? DEFAULT_MPP_TIMEOUT_MS;
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS node_keys (name TEXT PRIMARY KEY, secret TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS chain (id INTEGER PRIMARY KEY CHECK (id = 1), genesis_ms INTEGER NOT NULL, mined INTEGER NOT NULL DEFAULT 0) STRICT;
    `);
    // A chain table from before `mined` existed gets the column.
    const columns = this.#db.prepare('PRAGMA table_info(chain)').all().map((c) => text(c, 'name'));
    if (!columns.includes('mined')) this.#db.exec('ALTER TABLE chain ADD COLUMN mined INTEGER NOT NULL DEFAULT 0');
    this.#db.prepare('INSERT OR IGNORE INTO chain (id, genesis_ms) VALUES (1, ?)').run(Date.now());
    const row = this.#db.prepare('SELECT genesis_ms, mined FROM chain WHERE id = 1').get();
    if (!row) throw new Error('chain genesis missing');
    this.#genesisMs = int(row, 'genesis_ms');
    this.#minedBlocks = int(row, 'mined');
  }

  /** The persistent secret key of the node (or other devnet key) called `name`; made on first use. */
  secretKey(name: string): Uint8Array {
    this.#db.prepare('INSERT OR IGNORE INTO node_keys (name, secret) VALUES (?, ?)').run(name, bytesToHex(secp256k1.utils.randomSecretKey()));
    const row = this.#db.prepare('SELECT secret FROM node_keys WHERE name = ?').get(name);
    if (!row) throw new Error(`node key ${name} missing`);
    return hexToBytes(text(row, 'secret'));
  }

  /** One block every ten minutes of wall time since the devnet's first start, plus the blocks mined on demand. */
  blockHeight(nowMs = Date.now()): number {
    return GENESIS_HEIGHT + Math.max(0, Math.floor((nowMs - this.#genesisMs) / BLOCK_INTERVAL_MS)) + this.#minedBlocks;
  }

  /** Mines `count` blocks at once (kept across restarts) and tells the block listeners. Returns the new height. */
  mineBlocks(count: number): number {
    if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new RangeError('count must be an integer from 1 to 100000');
    this.#minedBlocks += count;
    this.#db.prepare('UPDATE chain SET mined = ? WHERE id = 1').run(this.#minedBlocks);
    const height = this.blockHeight();
    for (const listener of this.#blockListeners) listener(height);
    return height;
  }

  /** Called with the new height after `mineBlocks` (wall-time blocks are not announced: poll `blockHeight`). */
  onBlocks(listener: (height: number) => void): () => void {
    this.#blockListeners.add(listener);
    return () => this.#blockListeners.delete(listener);
  }

  addNode(pubkey: string, node: NetworkNode): void {
    this.#nodes.set(pubkey, node);
  }

  removeNode(pubkey: string): void {
    this.#nodes.delete(pubkey);
  }

  /**
   * Sends a payment. After the in-flight delay, `onOutcome` is called synchronously in the same
   * turn as the payee's `receive`, so a payer that records the outcome there never misses it.
   * Never called after `close()`: a payment still in flight then has not reached the payee.
   */
  send(request: SendRequest, onOutcome: (outcome: PaymentOutcome) => void, onDropped: (() => void) | null = null): void {
    const timer = setTimeout(() => {
      this.#inFlight.delete(timer);
      const routed = this.#route(request, onOutcome, onDropped);
      if (routed === null) return;
      if ('held' in routed) {
        this.#held.set(routed.held, { complete: (outcome) => onOutcome(routed.complete(outcome)), dropped: onDropped });
        return;
      }
      onOutcome(routed);
    }, this.#settleDelayMs);
    this.#inFlight.set(timer, onDropped);
  }

  /** Sends and waits for the outcome; a payment dropped by `close()` fails (it never reached the payee). */
  pay(request: SendRequest): Promise<PaymentOutcome> {
    return new Promise((resolve) =>
      this.send(request, resolve, () => resolve({ state: 'failed', paymentHash: null, reason: 'network stopped', code: 'NO_ROUTE' })),
    );
  }

  /** True while `payee` holds a payment for `paymentHash`. */
  isHeld(payeePubkey: string, paymentHash: string): boolean {
    return this.#held.has(`${payeePubkey}:${paymentHash}`);
  }

  /**
   * The payee's decision on a payment it held: settles it (the payer learns the preimage and
   * pays its fee) or fails it. The payer's outcome is delivered synchronously. Returns false
   * when no such payment is held.
   */
  resolveHeld(payeePubkey: string, paymentHash: string, outcome: FinalReceiveOutcome): boolean {
    const key = `${payeePubkey}:${paymentHash}`;
    const held = this.#held.get(key);
    if (!held) return false;
    this.#held.delete(key);
    held.complete(outcome);
    return true;
  }

  /** Routes a payment; null when it is a part now waiting for the rest of its set. */
  #route(request: SendRequest, deliver: (outcome: PaymentOutcome) => void, dropped: (() => void) | null): Routed | null {
    let paymentHash: string;
    let payeePubkey: string;
    let amount: Msat;
    let incoming: IncomingPayment;
    if (request.keysend !== undefined) {
      const { destination, preimage, tlvRecords } = request.keysend;
      paymentHash = paymentHashOf(hexToBytes(preimage));
      payeePubkey = destination;
      amount = request.amountMsat;
      if (amount <= 0n) return { state: 'failed', paymentHash, reason: 'keysend needs a positive amount', code: 'REJECTED' };
      incoming = { paymentHash, amountMsat: amount, keysend: { preimage, tlvRecords } };
    } else {
      const decoded = decodeInvoice(request.invoice);
      if (!decoded.ok) return { state: 'failed', paymentHash: null, reason: `invalid invoice: ${decoded.error.message}`, code: 'REJECTED' };
      const invoice = decoded.value;
      paymentHash = invoice.paymentHash;
      payeePubkey = invoice.payeeNodeKey;
      const rejected = (reason: string): PaymentOutcome => ({ state: 'failed', paymentHash, reason, code: 'REJECTED' });
      if (invoice.network !== 'regtest') return rejected(`invoice is for ${invoice.network}, this network is regtest`);
      if (invoice.expiresAt <= Math.floor(Date.now() / 1000)) return { state: 'failed', paymentHash, reason: 'invoice expired', code: 'INVOICE_EXPIRED' };
      const requested = request.amountMsat ?? invoice.amountMsat;
      if (requested === null || requested <= 0n) return rejected('amountless invoice needs an amount');
      const mpp = request.mpp;
      if (mpp !== undefined) {
        if (!invoice.basicMpp) return rejected('the invoice does not allow multi-part payments');
        if (requested > mpp.totalMsat) return rejected('a part larger than the total');
        if (invoice.amountMsat !== null && mpp.totalMsat !== invoice.amountMsat) return rejected('multi-part total does not match the invoice');
      } else if (invoice.amountMsat !== null && requested !== invoice.amountMsat) {
        return rejected('amount does not match the invoice');
      }
      amount = requested;
      incoming = { paymentHash, amountMsat: amount, keysend: null };
    }
    const failed = (reason: string, code: PaymentFailureCode): PaymentOutcome => ({ state: 'failed', paymentHash, reason, code });

    const payer = this.#nodes.get(request.payerPubkey);
    if (!payer?.online()) return failed('payer node is offline', 'NO_ROUTE');
    const payee = this.#nodes.get(payeePubkey);
    if (!payee?.online()) return failed(`no route to ${payeePubkey}`, 'NO_ROUTE');
    const fee = payeePubkey === request.payerPubkey ? 0n : routingFee(payer.policy, amount);
    if (request.maxFeeMsat !== null && fee > request.maxFeeMsat) {
      return failed(`route fee ${fee} msat exceeds the fee limit of ${request.maxFeeMsat} msat`, 'FEE_LIMIT_EXCEEDED');
    }
    const complete = (received: FinalReceiveOutcome): PaymentOutcome => {
      if (!received.ok) return failed(received.reason, received.code ?? 'REJECTED');
      if (paymentHashOf(hexToBytes(received.preimage)) !== paymentHash) return failed('payee returned a wrong preimage', 'REJECTED');
      return { state: 'settled', paymentHash, amountMsat: amount, feeMsat: fee, preimage: received.preimage };
    };
    if (request.keysend === undefined && request.mpp !== undefined && request.mpp.totalMsat !== amount) {
      this.#collectPart(payeePubkey, payee, paymentHash, request.mpp.totalMsat, { amountMsat: amount, complete, deliver, dropped });
      return null;
    }
    const received = payee.receive(incoming);
    if (received.ok === 'held') return { held: `${payeePubkey}:${paymentHash}`, complete };
    return complete(received);
  }

  /**
   * BOLT 4's rule at the payee: parts of one payment hash are held until they add up to the
   * total; then the payee sees one payment of the total, and its answer (preimage, refusal or
   * hold) goes to every part at once. A part naming another total, or going past it, fails
   * alone; a set not complete within `mppTimeoutMs` fails as a whole.
   */
  #collectPart(payeePubkey: string, payee: NetworkNode, paymentHash: string, totalMsat: Msat, part: MppPart): void {
    const key = `${payeePubkey}:${paymentHash}`;
    const fail = (p: MppPart, reason: string) => p.deliver(p.complete({ ok: false, reason, code: 'REJECTED' }));
    if (this.#held.has(key)) return fail(part, 'a payment for this hash is already held');
    let set = this.#mppSets.get(key);
    if (set === undefined) {
      const timer = setTimeout(() => {
        const timedOut = this.#mppSets.get(key);
        if (timedOut === undefined) return;
        this.#mppSets.delete(key);
        for (const p of timedOut.parts) fail(p, 'multi-part payment timed out before all parts arrived (mpp_timeout)');
      }, this.mppTimeoutMs);
      set = { payeePubkey, paymentHash, totalMsat, receivedMsat: 0n, parts: [], timer };
      this.#mppSets.set(key, set);
    }
    if (set.totalMsat !== totalMsat) return fail(part, 'multi-part total differs from the other parts');
    if (set.receivedMsat + part.amountMsat > set.totalMsat) return fail(part, 'multi-part parts exceed the total');
    set.parts.push(part);
    set.receivedMsat += part.amountMsat;
    if (set.receivedMsat < set.totalMsat) return;
    clearTimeout(set.timer);
    this.#mppSets.delete(key);
    const parts = set.parts;
    const completeAll = (received: FinalReceiveOutcome) => {
      for (const p of parts) p.deliver(p.complete(received));
    };
    const received = payee.receive({ paymentHash, amountMsat: totalMsat, keysend: null });
    if (received.ok === 'held') {
      this.#held.set(key, {
        complete: completeAll,
        dropped: () => {
          for (const p of parts) p.dropped?.();
        },
      });
      return;
    }
    completeAll(received);
  }

  /**
   * Drops payments still in flight and those held by their payee (their payers resend them
   * after a restart) and closes the store.
   */
  close(): void {
    for (const [timer, onDropped] of this.#inFlight) {
      clearTimeout(timer);
      onDropped?.();
    }
    this.#inFlight.clear();
    for (const held of this.#held.values()) held.dropped?.();
    this.#held.clear();
    for (const set of this.#mppSets.values()) {
      clearTimeout(set.timer);
      for (const p of set.parts) p.dropped?.();
    }
    this.#mppSets.clear();
    this.#blockListeners.clear();
    this.#nodes.clear();
    this.#db.close();
  }
}
