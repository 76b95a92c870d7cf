import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { NotificationSink } from './notification-outbox.ts';
import type { OperatorDirectory } from './operators.ts';

/** What the deposit services share: the database, the operators, a logger and a clock. */
export interface WalletContext {
  db: Db;
  operators: OperatorDirectory;
  logger: Logger;
  finality: FinalityNotifier;
  /** Sends queued notifications; absent where nothing sends them (tools, tests of money rows). */
  notifications?: NotificationSink | undefined;
  /** Publishes the receipts of settled zap invoices (NIP-57); absent where nothing publishes them. */
  zapReceipts?: NotificationSink | undefined;
  /** Aborted when the bridge stops: work that waits on vaults gives up and leaves its request to be resumed. */
  stopping: AbortSignal;
  /** Unix seconds. */
  now(): number;
}

/** Thrown out of work abandoned because the bridge is stopping; the request is resumed later. */
export class BridgeStopping extends Error {
  constructor() {
    super('the bridge is stopping');
    this.name = 'BridgeStopping';
  }
}

/** Payments remembered as final here, at most (by operator, deposit and key). */
const RECENTLY_FINAL = 4_096;

/**
 * Wakes whoever waits on a payment when it becomes final, whichever path finalized it, and
 * knows the payments whose outcome this instance has from a vault's answer (or is waiting for
 * in that answer), so that the same outcome arriving on the vault's event stream costs nothing.
 */
export class FinalityNotifier {
  readonly #waiters = new Map<bigint, Set<() => void>>();
  readonly #final = new Set<string>();
  readonly #answering = new Map<string, number>();

  /** Remembers that the payment under `idempotencyKey` at this operator's deposit is final here. */
  remember(operatorPubkey: string, remoteDepositId: string, idempotencyKey: string): void {
    if (this.#final.size >= RECENTLY_FINAL) this.#final.delete(this.#final.values().next().value!);
    this.#final.add(`${operatorPubkey}/${remoteDepositId}/${idempotencyKey}`);
  }

  /**
   * Runs `call`, a payment call to its vault whose answer carries the payment's outcome, and
   * the recording of that answer: an event of the same outcome arriving meanwhile is left to it.
   */
  async answering<T>(operatorPubkey: string, remoteDepositId: string, idempotencyKey: string, call: () => Promise<T>): Promise<T> {
    const key = `${operatorPubkey}/${remoteDepositId}/${idempotencyKey}`;
    this.#answering.set(key, (this.#answering.get(key) ?? 0) + 1);
    try {
      return await call();
    } finally {
      const left = (this.#answering.get(key) ?? 1) - 1;
      if (left > 0) this.#answering.set(key, left);
      else this.#answering.delete(key);
    }
  }

  /**
   * True when this instance has that payment's outcome, or awaits it in a vault's answer (false
   * says nothing: it may be final all the same). A vault answers a payment call only once the
   * payment is final or still pending, so an event emitted while the call runs has its outcome
   * in the answer; one that answered pending is asked about again.
   */
  isKnownFinal(operatorPubkey: string, remoteDepositId: string, idempotencyKey: string): boolean {
    const key = `${operatorPubkey}/${remoteDepositId}/${idempotencyKey}`;
    return this.#final.has(key) || this.#answering.has(key);
  }

  /** Resolves when `txId` is notified, after `timeoutMs`, or when `signal` aborts, whichever comes first. */
  wait(txId: bigint, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.get(txId)?.delete(wake);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', wake, { once: true });
      const set = this.#waiters.get(txId) ?? new Set();
      set.add(wake);
      this.#waiters.set(txId, set);
    });
  }

  notify(txId: bigint): void {
    const set = this.#waiters.get(txId);
    this.#waiters.delete(txId);
    for (const wake of set ?? []) wake();
  }
}
