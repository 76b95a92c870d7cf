/**
 * The two Lightning nodes outside the vaults: a payer with unlimited funds (the world paying
 * into deposits) and a payee that makes invoices and records what it received (the world
 * being paid from deposits).
 */
import type { DatabaseSync } from 'node:sqlite';
import type { Msat } from '../protocol/amounts.ts';
import {
  buildInvoice,
  newPaymentSecrets,
  nodePubkeyOf,
  type LightningNetwork,
  type PaymentOutcome,
  type ReceiveOutcome,
  type RoutingPolicy,
} from './lightning-network.ts';
import { bigintOrNull, int, intOrNull, openDatabase, text, transaction } from './sqlite.ts';

/** The external payer's own routing fee, charged to it on every payment. */
export const EXTERNAL_PAYER_POLICY: RoutingPolicy = { baseMsat: 100n, ppm: 100 };

export interface PayeeInvoiceStatus {
  state: 'pending' | 'settled' | 'expired';
  /** The invoice's amount, or for a settled amountless invoice the amount received; else null. */
  amountMsat: Msat | null;
  preimage: string | null;
  settledAt: number | null;
}

export class ExternalNodes {
  readonly payerPubkey: string;
  readonly payeePubkey: string;
  readonly #payeeSecret: Uint8Array;
  readonly #network: LightningNetwork;
  readonly #db: DatabaseSync;

  /** `dbPath` holds the payee's invoices; null keeps them in memory. */
  constructor(network: LightningNetwork, dbPath: string | null) {
    this.#network = network;
    this.#db = openDatabase(dbPath);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS payee_invoices (
        payment_hash TEXT PRIMARY KEY,
        invoice TEXT NOT NULL,
        amount_msat INTEGER,
        preimage TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        received_msat INTEGER,
        settled_at INTEGER
      ) STRICT;
    `);
    this.payerPubkey = nodePubkeyOf(network.secretKey('external-payer'));
    this.#payeeSecret = network.secretKey('external-payee');
    this.payeePubkey = nodePubkeyOf(this.#payeeSecret);
    network.addNode(this.payerPubkey, {
      policy: EXTERNAL_PAYER_POLICY,
      online: () => true,
      receive: () => ({ ok: false, reason: 'the external payer takes no payments' }),
    });
    network.addNode(this.payeePubkey, {
      policy: { baseMsat: 0n, ppm: 0 },
      online: () => true,
      receive: (hash, amount) => this.#receive(hash, amount),
    });
  }

  /** Pays an invoice from the external payer, which has unlimited funds and no fee limit. */
  pay(invoice: string, amountMsat: Msat | null = null): Promise<PaymentOutcome> {
    return this.#network.pay({ payerPubkey: this.payerPubkey, invoice, amountMsat, maxFeeMsat: null });
  }

  /** An invoice of the external payee; `amountMsat` null makes an amountless one. */
  createInvoice(amountMsat: Msat | null, description = '', expirySeconds = 3600): { invoice: string; paymentHash: string } {
    const { preimage, paymentHash, paymentSecret } = newPaymentSecrets();
    const now = Math.floor(Date.now() / 1000);
    const invoice = buildInvoice({
      nodeSecret: this.#payeeSecret,
      amountMsat,
      paymentHash,
      paymentSecret,
      description,
      descriptionHash: null,
      timestamp: now,
      expirySeconds,
    });
    this.#db
      .prepare('INSERT INTO payee_invoices (payment_hash, invoice, amount_msat, preimage, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(paymentHash, invoice, amountMsat, preimage, now, now + expirySeconds);
    return { invoice, paymentHash };
  }

  invoiceStatus(paymentHash: string): PayeeInvoiceStatus | null {
    const statement = this.#db.prepare('SELECT * FROM payee_invoices WHERE payment_hash = ?');
    statement.setReadBigInts(true);
    const row = statement.get(paymentHash);
    if (!row) return null;
    const settledAt = intOrNull(row, 'settled_at');
    const expired = settledAt === null && int(row, 'expires_at') <= Math.floor(Date.now() / 1000);
    return {
      state: settledAt !== null ? 'settled' : expired ? 'expired' : 'pending',
      amountMsat: bigintOrNull(row, 'received_msat') ?? bigintOrNull(row, 'amount_msat'),
      preimage: settledAt === null ? null : text(row, 'preimage'),
      settledAt,
    };
  }

  #receive(paymentHash: string, amountMsat: Msat): ReceiveOutcome {
    return transaction(this.#db, () => {
      const statement = this.#db.prepare('SELECT * FROM payee_invoices WHERE payment_hash = ?');
      statement.setReadBigInts(true);
      const row = statement.get(paymentHash);
      if (!row) return { ok: false, reason: 'unknown payment hash' };
      if (intOrNull(row, 'settled_at') !== null) return { ok: false, reason: 'invoice already paid' };
      const now = Math.floor(Date.now() / 1000);
      if (int(row, 'expires_at') <= now) return { ok: false, reason: 'invoice expired' };
      const amount = bigintOrNull(row, 'amount_msat');
      if (amount !== null && amount !== amountMsat) return { ok: false, reason: 'incorrect payment amount' };
      this.#db.prepare('UPDATE payee_invoices SET received_msat = ?, settled_at = ? WHERE payment_hash = ?').run(amountMsat, now, paymentHash);
      return { ok: true, preimage: text(row, 'preimage') };
    });
  }

  close(): void {
    this.#network.removeNode(this.payerPubkey);
    this.#network.removeNode(this.payeePubkey);
    this.#db.close();
  }
}
