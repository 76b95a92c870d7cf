import type { Result, VaultErrorCode } from '../protocol/result.ts';
import type { TransferDestination } from '../protocol/transfer.ts';

/** The operator's own move of a deposit to another vault (answers the payment record, or why not). */
export type DepositMover = (depositId: string, destination: TransferDestination) => Promise<Result<unknown>>;

/**
 * Fault switches of a devnet vault operator, for tests of how the bridge copes. Setting one
 * takes effect at once; `onChange` lets the operator react (close streams, release payments).
 */
export class VaultFaults {
  #down = false;
  #delayMs = 0;
  #holdPayments = false;
  #failPayments: string | null = null;
  #skipCredit = false;
  #reservePpm = 1_000_000;
  #overchargeFeeMsat = 0n;
  #misreportBalanceMsat = 0n;
  #invalidProof = false;
  #refusePayments: VaultErrorCode | null = null;
  #mover: DepositMover | null = null;
  #noMppInvoices = false;
  readonly #onChange: () => void;

  constructor(onChange: () => void) {
    this.#onChange = onChange;
  }

  /** Every API call answers 503 UNAVAILABLE, open event streams close, and the node is offline. */
  get down(): boolean {
    return this.#down;
  }
  set down(value: boolean) {
    this.#down = value;
    this.#onChange();
  }

  /** Every API response is delayed by this many milliseconds. */
  get delayMs(): number {
    return this.#delayMs;
  }
  set delayMs(value: number) {
    this.#delayMs = value;
  }

  /** Accepted payments stay pending until released (`releasePayments`, or setting this back to false). */
  get holdPayments(): boolean {
    return this.#holdPayments;
  }
  set holdPayments(value: boolean) {
    this.#holdPayments = value;
    this.#onChange();
  }

  /** Accepted payments fail with this reason instead of being sent. */
  get failPayments(): string | null {
    return this.#failPayments;
  }
  set failPayments(value: string | null) {
    this.#failPayments = value;
  }

  /** The selective-payment attack: take payments into deposits without crediting them. */
  get skipCredit(): boolean {
    return this.#skipCredit;
  }
  set skipCredit(value: boolean) {
    this.#skipCredit = value;
  }

  /** The reserve reported in /v0/metrics, in ppm of the deposits' total (1 000 000 = fully backed). */
  get reservePpm(): number {
    return this.#reservePpm;
  }
  set reservePpm(value: number) {
    this.#reservePpm = value;
  }

  /**
   * A vault charging a fee above the limit: a payment settling while this is set reports
   * `fee_msat` = its real routing fee + this, even above `max_fee_msat`, and the deposit is
   * debited amount + that fee (the signed balance update shows it). The overcharge is cut to
   * what the deposit holds beyond its other payments in flight, so no balance goes below zero.
   */
  get overchargeFeeMsat(): bigint {
    return this.#overchargeFeeMsat;
  }
  set overchargeFeeMsat(value: bigint) {
    if (value < 0n) throw new RangeError('overchargeFeeMsat must not be negative');
    this.#overchargeFeeMsat = value;
  }

  /**
   * A vault reporting a wrong balance: deposit status shows `balance_msat` off by this much
   * (never below zero), with a balance update for that figure signed by both peers, carrying
   * the seq and created_at of the newest real one. Ledger, events and metrics stay true.
   */
  get misreportBalanceMsat(): bigint {
    return this.#misreportBalanceMsat;
  }
  set misreportBalanceMsat(value: bigint) {
    this.#misreportBalanceMsat = value;
  }

  /** A vault handing out invoices without a valid vault proof: invoices made while set carry a `peer_sig` by a random key. */
  get invalidProof(): boolean {
    return this.#invalidProof;
  }
  set invalidProof(value: boolean) {
    this.#invalidProof = value;
  }

  /**
   * A vault that refuses: every `POST …/payments` answers this code with its documented HTTP
   * status, before any check, balance change or record (not counted in `authorizations_refused`).
   */
  get refusePayments(): VaultErrorCode | null {
    return this.#refusePayments;
  }
  set refusePayments(value: VaultErrorCode | null) {
    this.#refusePayments = value;
  }

  /** Invoices made while set do not allow multi-part payments (no basic_mpp feature bit), as some nodes issue them. */
  get noMppInvoices(): boolean {
    return this.#noMppInvoices;
  }
  set noMppInvoices(value: boolean) {
    this.#noMppInvoices = value;
  }

  /** Set by the operator: how it moves a deposit on its own initiative. */
  setMover(mover: DepositMover): void {
    this.#mover = mover;
  }

  /**
   * A vault-initiated transfer: the operator moves `destination`'s amount out of the deposit
   * into another vault's deposit of the same owner (the invoice with its vault proof and owner
   * attestation), paying the routing fee from the deposit too, and emits `deposit_moved`.
   */
  moveDeposit(depositId: string, destination: TransferDestination): Promise<Result<unknown>> {
    if (this.#mover === null) throw new Error('this operator cannot move deposits');
    return this.#mover(depositId, destination);
  }
}
