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
 * remembers the payments this instance finalized from a vault's answer, so that the same
 * outcome arriving again on the vault's event stream costs nothing.
 */
export class FinalityNotifier {
  readonly #waiters = new Map<bigint, Set<() => void>>();
  readonly #final = new Set<string>();

  /** Remembers that the payment under `idempotencyKey` at this operator's deposit is final here. */
  remember(operatorPubkey: string, remoteDepositId: string, idempotencyKey: string): void {
    if (this.#final.size >= RECENTLY_FINAL) this.#final.delete(this.#final.values().next().value!);
    this.#final.add(`${operatorPubkey}/${remoteDepositId}/${idempotencyKey}`);
  }

  /** True when this instance finalized that payment lately (false says nothing: it may be final all the same). */
  isKnownFinal(operatorPubkey: string, remoteDepositId: string, idempotencyKey: string): boolean {
    return this.#final.has(`${operatorPubkey}/${remoteDepositId}/${idempotencyKey}`);
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
