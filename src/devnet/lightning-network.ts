/**
 * A simulated Lightning network for the devnet: nodes with persistent secp256k1 keys, BOLT 11
 * invoices signed by their node, and payments that are in flight for a moment and then settle
 * (the payee hands over the preimage) or fail with a reason. A payment leaving a node pays that
 * node's routing fee; a payment to an invoice of the paying node itself pays none.
 */
import bolt11 from 'bolt11';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { DatabaseSync } from 'node:sqlite';
import type { Msat } from '../protocol/amounts.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { decodeInvoice } from '../protocol/invoice.ts';
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

function paymentHashOf(preimage: Uint8Array): string {
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
}

/** Min final CLTV delta written into devnet invoices (LND's default). */
const MIN_FINAL_CLTV_EXPIRY = 80;

/** Builds and signs a regtest BOLT 11 invoice with payment secret, var_onion and basic_mpp. */
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
        { tagName: 'min_final_cltv_expiry', data: MIN_FINAL_CLTV_EXPIRY },
        {
          tagName: 'feature_bits',
          data: { word_length: 4, var_onion_optin: { required: true }, payment_secret: { required: true }, basic_mpp: { supported: true } },
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

export type ReceiveOutcome = { ok: true; preimage: string } | { ok: false; reason: string };

/** A node as the network sees it. */
export interface NetworkNode {
  policy: RoutingPolicy;
  /** False while the node is offline: nothing routes to it and it sends nothing. */
  online(): boolean;
  /**
   * Takes an incoming payment for one of the node's invoices: checks and records it durably,
   * synchronously, and hands out the preimage, or refuses with a reason.
   */
  receive(paymentHash: string, amountMsat: Msat): ReceiveOutcome;
}

export interface SendRequest {
  payerPubkey: string;
  invoice: string;
  /** The amount to deliver; null means the invoice's own amount. */
  amountMsat: Msat | null;
  /** The most the payer pays in routing fees; null for no limit. */
  maxFeeMsat: Msat | null;
}

export type PaymentOutcome =
  | { state: 'settled'; paymentHash: string; amountMsat: Msat; feeMsat: Msat; preimage: string }
  | { state: 'failed'; paymentHash: string | null; reason: string };

/** Block height at genesis; regtest wallets start just past coinbase maturity. */
const GENESIS_HEIGHT = 101;
const BLOCK_INTERVAL_MS = 600_000;

export interface LightningNetworkOptions {
  /** SQLite file for node keys and the chain's genesis; null keeps them in memory. */
  dbPath: string | null;
  /** How long a payment is in flight before it settles or fails. */
  settleDelayMs?: number;
}

export class LightningNetwork {
  readonly #db: DatabaseSync;
  readonly #nodes = new Map<string, NetworkNode>();
  /** Payments in flight, with what to tell a waiting caller if the network closes first. */
  readonly #inFlight = new Map<NodeJS.Timeout, (() => void) | null>();
  readonly #settleDelayMs: number;
  readonly #genesisMs: number;

  constructor(options: LightningNetworkOptions) {
    this.#db = openDatabase(options.dbPath);
    this.#settleDelayMs = options.settleDelayMs ?? 20;
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS node_keys (name TEXT PRIMARY KEY, secret TEXT NOT NULL) STRICT;
      CREATE TABLE IF NOT EXISTS chain (id INTEGER PRIMARY KEY CHECK (id = 1), genesis_ms INTEGER NOT NULL) STRICT;
    `);
    this.#db.prepare('INSERT OR IGNORE INTO chain (id, genesis_ms) VALUES (1, ?)').run(Date.now());
    const row = this.#db.prepare('SELECT genesis_ms FROM chain WHERE id = 1').get();
    if (!row) throw new Error('chain genesis missing');
    this.#genesisMs = int(row, 'genesis_ms');
  }

  /** The persistent secret key of the node (or other devnet key) called `name`; made on first use. */
  secretKey(name: string): Uint8Array {
    this.#db.prepare('INSERT OR IGNORE INTO node_keys (name, secret) VALUES (?, ?)').run(name, bytesToHex(secp256k1.utils.randomSecretKey()));
    const row = this.#db.prepare('SELECT secret FROM node_keys WHERE name = ?').get(name);
    if (!row) throw new Error(`node key ${name} missing`);
    return hexToBytes(text(row, 'secret'));
  }

  /** One block every ten minutes of wall time since the devnet's first start. */
  blockHeight(nowMs = Date.now()): number {
    return GENESIS_HEIGHT + Math.max(0, Math.floor((nowMs - this.#genesisMs) / BLOCK_INTERVAL_MS));
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
      onOutcome(this.#route(request));
    }, this.#settleDelayMs);
    this.#inFlight.set(timer, onDropped);
  }

  /** Sends and waits for the outcome; a payment dropped by `close()` fails (it never reached the payee). */
  pay(request: SendRequest): Promise<PaymentOutcome> {
    return new Promise((resolve) =>
      this.send(request, resolve, () => resolve({ state: 'failed', paymentHash: null, reason: 'network stopped' })),
    );
  }

  #route(request: SendRequest): PaymentOutcome {
    const decoded = decodeInvoice(request.invoice);
    if (!decoded.ok) return { state: 'failed', paymentHash: null, reason: `invalid invoice: ${decoded.error.message}` };
    const invoice = decoded.value;
    const failed = (reason: string): PaymentOutcome => ({ state: 'failed', paymentHash: invoice.paymentHash, reason });
    if (invoice.network !== 'regtest') return failed(`invoice is for ${invoice.network}, this network is regtest`);
    if (invoice.expiresAt <= Math.floor(Date.now() / 1000)) return failed('invoice expired');
    const amount = request.amountMsat ?? invoice.amountMsat;
    if (amount === null || amount <= 0n) return failed('amountless invoice needs an amount');
    if (invoice.amountMsat !== null && amount !== invoice.amountMsat) return failed('amount does not match the invoice');

    const payer = this.#nodes.get(request.payerPubkey);
    if (!payer?.online()) return failed('payer node is offline');
    const payee = this.#nodes.get(invoice.payeeNodeKey);
    if (!payee?.online()) return failed(`no route to ${invoice.payeeNodeKey}`);
    const fee = invoice.payeeNodeKey === request.payerPubkey ? 0n : routingFee(payer.policy, amount);
    if (request.maxFeeMsat !== null && fee > request.maxFeeMsat) {
      return failed(`route fee ${fee} msat exceeds the fee limit of ${request.maxFeeMsat} msat`);
    }
    const received = payee.receive(invoice.paymentHash, amount);
    if (!received.ok) return failed(received.reason);
    if (paymentHashOf(hexToBytes(received.preimage)) !== invoice.paymentHash) return failed('payee returned a wrong preimage');
    return { state: 'settled', paymentHash: invoice.paymentHash, amountMsat: amount, feeMsat: fee, preimage: received.preimage };
  }

  /** Drops payments still in flight (their payers resend them after a restart) and closes the store. */
  close(): void {
    for (const [timer, onDropped] of this.#inFlight) {
      clearTimeout(timer);
      onDropped?.();
    }
    this.#inFlight.clear();
    this.#nodes.clear();
    this.#db.close();
  }
}
