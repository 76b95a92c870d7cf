import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { OperatorDirectory } from './operators.ts';

/** What the deposit services share: the database, the operators, a logger and a clock. */
export interface WalletContext {
  db: Db;
  operators: OperatorDirectory;
  logger: Logger;
  finality: FinalityNotifier;
  /** Unix seconds. */
  now(): number;
}

/** Wakes whoever waits on a payment when it becomes final, whichever path finalized it. */
export class FinalityNotifier {
  readonly #waiters = new Map<bigint, Set<() => void>>();

  /** Resolves when `txId` is notified or after `timeoutMs`, whichever comes first. */
  wait(txId: bigint, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.get(txId)?.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
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
