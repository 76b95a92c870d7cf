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
}

