import type { VaultEvent } from '../protocol/vault-api.ts';
import type { EventSubscription } from '../vault-client/vault-client.ts';
import { applyMaintenanceCharge } from './maintenance.ts';
import type { WalletContext } from './context.ts';
import { applyHoldAccepted, applyInvoiceSettled, applyInvoiceStatus } from './invoices.ts';
import { applyPaymentEvent } from './payments.ts';
import { applyDepositMoved } from './transfers.ts';

/** How long an applied event's seq may wait before it is stored as the operator's cursor. */
const CURSOR_STORE_MS = 200;

/**
 * Follows each operator's event stream from the last applied seq and applies what it says:
 * settled invoices credit deposits, payment outcomes finalize payments. Every apply is
 * idempotent, and the cursor moves only after it, so a crash replays rather than skips. The
 * cursor is stored at most every CURSOR_STORE_MS (and when following stops), not after each
 * event: a crash replays those few events instead, which costs nothing but their reading again.
 */
export class VaultEventFollower {
  readonly #ctx: WalletContext;
  readonly #subscriptions = new Map<string, EventSubscription>();
  readonly #connected = new Map<string, boolean>();
  /** Applied seqs not stored yet, by operator. */
  readonly #unstored = new Map<string, number>();
  #storeTimer: NodeJS.Timeout | undefined;

  constructor(ctx: WalletContext) {
    this.#ctx = ctx;
  }

  async follow(operatorPubkey: string): Promise<void> {
    if (!this.#followable(operatorPubkey)) return;
    const row = await this.#ctx.db.selectFrom('vault_operators').select('events_cursor').where('node_pubkey', '=', operatorPubkey).executeTakeFirstOrThrow();
    // Removed (or re-added with a new client) while the cursor was read: look again.
    const op = this.#followable(operatorPubkey);
    if (!op) return;
    const subscription = op.client.subscribeEvents(
      Number(row.events_cursor),
      async (event) => {
        try {
          await this.#apply(operatorPubkey, event);
        } catch (error) {
          // Not fatal to the stream: the state is also pulled when a client looks it up.
          this.#ctx.logger.error({ operator: op.name, seq: event.seq, err: error }, 'could not apply a vault event');
        }
        this.#unstored.set(operatorPubkey, event.seq);
        this.#storeTimer ??= setTimeout(() => {
          this.#storeTimer = undefined;
          void this.#storeCursors().catch((error: unknown) => this.#ctx.logger.warn({ err: error }, 'could not store vault event cursors; events are read again'));
        }, CURSOR_STORE_MS).unref();
      },
      (connected) => {
        this.#connected.set(operatorPubkey, connected);
        this.#ctx.operators.observe(operatorPubkey, connected);
      },
    );
    this.#subscriptions.set(operatorPubkey, subscription);
  }

  async #apply(operatorPubkey: string, event: VaultEvent): Promise<void> {
    switch (event.type) {
      case 'invoice_settled':
        await applyInvoiceSettled(this.#ctx, operatorPubkey, {
          remoteDepositId: event.deposit_id,
          paymentHash: event.payment_hash,
          amountMsat: event.amount_msat,
          preimage: event.preimage,
          settledAt: event.settled_at,
          balanceUpdate: event.balance_update,
        });
        return;
      case 'payment_settled':
      case 'payment_failed': {
        const op = this.#ctx.operators.get(operatorPubkey);
        if (!op) return;
        await applyPaymentEvent(this.#ctx, operatorPubkey, event.deposit_id, event.idempotency_key, () => op.client.paymentStatus(event.deposit_id, event.idempotency_key));
        return;
      }
      case 'hold_invoice_accepted':
        await applyHoldAccepted(this.#ctx, operatorPubkey, event.deposit_id, event.payment_hash, event.settle_deadline);
        return;
      case 'invoice_canceled': {
        // The event is a hint; the invoice's own record at the vault is what gets applied.
        const op = this.#ctx.operators.get(operatorPubkey);
        const status = await op?.client.invoiceStatus(event.deposit_id, event.payment_hash);
        if (status) await applyInvoiceStatus(this.#ctx, operatorPubkey, event.deposit_id, status);
        return;
      }
      case 'deposit_moved':
        await applyDepositMoved(this.#ctx, operatorPubkey, event);
        return;
      case 'maintenance_charged':
        await applyMaintenanceCharge(this.#ctx, operatorPubkey, {
          remoteDepositId: event.deposit_id,
          feeMsat: event.fee_msat,
          fromHeight: event.from_height,
          toHeight: event.to_height,
          balanceUpdate: event.balance_update,
        });
        return;
      case 'lock_changed':
        this.#ctx.logger.info({ operatorPubkey, deposit: event.deposit_id, locked: event.locked }, 'deposit lock changed');
        return;
    }
  }

  /**
   * The operator, when it is in use and not followed yet. One removed from the vaults file is not
   * followed anew, but a stream already open stays open: what it still holds keeps moving there
   * (payments in flight, invoices paid late, maintenance charges), and the books must see it.
   */
  #followable(operatorPubkey: string) {
    const op = this.#ctx.operators.get(operatorPubkey);
    return op && !op.retired && !this.#subscriptions.has(operatorPubkey) ? op : undefined;
  }

  /** Stops following one operator; its cursor stays, so following it again resumes where it stopped. */
  unfollow(operatorPubkey: string): void {
    this.#subscriptions.get(operatorPubkey)?.close();
    this.#subscriptions.delete(operatorPubkey);
    this.#connected.delete(operatorPubkey);
  }

  /** True when every followed operator's stream is connected. */
  allConnected(): boolean {
    return [...this.#subscriptions.keys()].every((k) => this.#connected.get(k) === true);
  }

  /** Stores the seq of the last event applied from each operator, where it moved. */
  async #storeCursors(): Promise<void> {
    const applied = [...this.#unstored];
    this.#unstored.clear();
    for (const [operatorPubkey, seq] of applied) {
      await this.#ctx.db
        .updateTable('vault_operators')
        .set({ events_cursor: BigInt(seq) })
        .where('node_pubkey', '=', operatorPubkey)
        .where('events_cursor', '<', BigInt(seq))
        .execute();
    }
  }

  /** Stops following and stores the cursors. */
  async stop(): Promise<void> {
    for (const s of this.#subscriptions.values()) s.close();
    this.#subscriptions.clear();
    clearTimeout(this.#storeTimer);
    this.#storeTimer = undefined;
    await this.#storeCursors().catch((error: unknown) => this.#ctx.logger.warn({ err: error }, 'could not store vault event cursors; events are read again'));
  }
}
