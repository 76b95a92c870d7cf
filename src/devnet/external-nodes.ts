/**
 * The two Lightning nodes outside the vaults: a payer with unlimited funds (the world paying
 * into deposits) and a payee that makes invoices, takes keysend payments and records what it
 * received (the world being paid from deposits). The control server also serves the payee's
 * lightning address (LUD-16) from these invoices.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { Msat } from '../protocol/amounts.ts';
import { tlvRecordsSchema, tlvRecordsToWire, type TlvRecord } from '../protocol/nwc-request.ts';
import {
  buildInvoice,
  newPaymentSecrets,
  nodePubkeyOf,
  type IncomingPayment,
  type LightningNetwork,
  type PaymentOutcome,
  type ReceiveOutcome,
  type RoutingPolicy,
} from './lightning-network.ts';
import { bigintOrNull, int, intOrNull, openDatabase, text, textOrNull, transaction } from './sqlite.ts';

/** The external payer's own routing fee, charged to it on every payment. */
export const EXTERNAL_PAYER_POLICY: RoutingPolicy = { baseMsat: 100n, ppm: 100 };

export interface PayeeInvoiceStatus {
  state: 'pending' | 'settled' | 'expired';
  /** The invoice's amount, or for a settled amountless invoice the amount received; else null. */
  amountMsat: Msat | null;
  preimage: string | null;
  settledAt: number | null;
  /** The LUD-12 comment (NWC-321 payer note) that came with a lightning address payment, or null. */
  comment: string | null;
  /** The description hash the invoice commits to (a lightning address invoice's metadata hash), or null. */
  descriptionHash: string | null;
}

/** A keysend payment the external payee received. */
export interface KeysendReceipt {
  paymentHash: string;
  preimage: string;
  amountMsat: Msat;
  tlvRecords: TlvRecord[];
  receivedAt: number;
}

export interface PayeeInvoiceOptions {
  /** Commit to this description hash instead of a description (LUD-06 metadata hash). */
  descriptionHash?: string;
  /** Recorded with the invoice: the LUD-12 comment of a lightning address payment. */
  comment?: string;
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
      CREATE TABLE IF NOT EXISTS payee_keysends (
        payment_hash TEXT PRIMARY KEY,
        preimage TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        tlv_records TEXT NOT NULL,
        received_at INTEGER NOT NULL
      ) STRICT;
    `);
    // Columns added after the first devnet release.
    const columns = this.#db.prepare('PRAGMA table_info(payee_invoices)').all().map((c) => text(c, 'name'));
    if (!columns.includes('comment')) this.#db.exec('ALTER TABLE payee_invoices ADD COLUMN comment TEXT');
    if (!columns.includes('description_hash')) this.#db.exec('ALTER TABLE payee_invoices ADD COLUMN description_hash TEXT');
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
      receive: (payment) => this.#receive(payment),
    });
  }

  /**
   * Pays an invoice from the external payer, which has unlimited funds and no fee limit. A
   * payment to a hold invoice resolves once the payee settles or cancels it.
   */
  pay(invoice: string, amountMsat: Msat | null = null): Promise<PaymentOutcome> {
    return this.#network.pay({ payerPubkey: this.payerPubkey, invoice, amountMsat, maxFeeMsat: null });
  }

  /** An invoice of the external payee; `amountMsat` null makes an amountless one. */
  createInvoice(amountMsat: Msat | null, description = '', expirySeconds = 3600, options: PayeeInvoiceOptions = {}): { invoice: string; paymentHash: string } {
    const { preimage, paymentHash, paymentSecret } = newPaymentSecrets();
    const now = Math.floor(Date.now() / 1000);
    const descriptionHash = options.descriptionHash ?? null;
    const invoice = buildInvoice({
      nodeSecret: this.#payeeSecret,
      amountMsat,
      paymentHash,
      paymentSecret,
      description: descriptionHash === null ? description : null,
      descriptionHash,
      timestamp: now,
      expirySeconds,
    });
    this.#db
      .prepare(
        'INSERT INTO payee_invoices (payment_hash, invoice, amount_msat, preimage, created_at, expires_at, comment, description_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(paymentHash, invoice, amountMsat, preimage, now, now + expirySeconds, options.comment ?? null, descriptionHash);
    return { invoice, paymentHash };
  }

  /** A keysend payment the payee received, by payment hash, or null. */
  keysendReceipt(paymentHash: string): KeysendReceipt | null {
    const statement = this.#db.prepare('SELECT * FROM payee_keysends WHERE payment_hash = ?');
    statement.setReadBigInts(true);
    const row = statement.get(paymentHash);
    if (!row) return null;
    return {
      paymentHash,
      preimage: text(row, 'preimage'),
      amountMsat: bigintOrNull(row, 'amount_msat') ?? 0n,
      tlvRecords: tlvRecordsSchema.parse(JSON.parse(text(row, 'tlv_records'))),
      receivedAt: int(row, 'received_at'),
    };
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
      comment: textOrNull(row, 'comment'),
      descriptionHash: textOrNull(row, 'description_hash'),
    };
  }

  #receive(payment: IncomingPayment): ReceiveOutcome {
    const { paymentHash, amountMsat } = payment;
    const keysend = payment.keysend;
    if (keysend !== null) {
      return transaction(this.#db, () => {
        if (this.#db.prepare('SELECT 1 AS seen FROM payee_keysends WHERE payment_hash = ?').get(paymentHash)) {
          return { ok: false, reason: 'keysend with this payment hash already received', code: 'ALREADY_PAID' };
        }
        const records = JSON.stringify(tlvRecordsToWire(keysend.tlvRecords));
        this.#db
          .prepare('INSERT INTO payee_keysends (payment_hash, preimage, amount_msat, tlv_records, received_at) VALUES (?, ?, ?, ?, ?)')
          .run(paymentHash, keysend.preimage, amountMsat, records, Math.floor(Date.now() / 1000));
        return { ok: true, preimage: keysend.preimage };
      });
    }
    return transaction(this.#db, (): ReceiveOutcome => {
      const statement = this.#db.prepare('SELECT * FROM payee_invoices WHERE payment_hash = ?');
      statement.setReadBigInts(true);
      const row = statement.get(paymentHash);
      if (!row) return { ok: false, reason: 'unknown payment hash', code: 'REJECTED' };
      if (intOrNull(row, 'settled_at') !== null) return { ok: false, reason: 'invoice already paid', code: 'ALREADY_PAID' };
      const now = Math.floor(Date.now() / 1000);
      if (int(row, 'expires_at') <= now) return { ok: false, reason: 'invoice expired', code: 'INVOICE_EXPIRED' };
      const amount = bigintOrNull(row, 'amount_msat');
      if (amount !== null && amount !== amountMsat) return { ok: false, reason: 'incorrect payment amount', code: 'REJECTED' };
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
