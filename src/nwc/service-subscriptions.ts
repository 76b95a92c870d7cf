import type { Filter } from 'nostr-tools/filter';
import type { RelayTransport } from './relay-pool.ts';

export interface SubscriptionShape {
  /** Wallet service keys per `#p` filter. */
  keysPerFilter: number;
  /** Filters per REQ: each REQ is one subscription at the relay. */
  filtersPerSubscription: number;
}

/**
 * Fits relays' usual limits with room to spare: tag filters of at most 256 values are common
 * (@nostr-relay/validator's default refuses more), filters per REQ are rarely limited.
 */
export const DEFAULT_SUBSCRIPTION_SHAPE: SubscriptionShape = { keysPerFilter: 250, filtersPerSubscription: 20 };

/**
 * The wallet service keys the bridge listens on, packed into few subscriptions: keys fill
 * `#p` filters in the order they came, filters fill REQs, so 10 000 keys fill two REQs per relay
 * with the defaults. A new key changes only the last REQ, which is sent again under its id.
 */
export class ServiceKeySubscriptions {
  readonly #transport: RelayTransport;
  readonly #shape: SubscriptionShape;
  readonly #filter: (pubkeys: string[]) => Filter;
  readonly #keys: string[] = [];
  readonly #known = new Set<string>();

  constructor(transport: RelayTransport, filter: (pubkeys: string[]) => Filter, shape: SubscriptionShape = DEFAULT_SUBSCRIPTION_SHAPE) {
    this.#transport = transport;
    this.#filter = filter;
    this.#shape = shape;
  }

  has(pubkey: string): boolean {
    return this.#known.has(pubkey);
  }

  /** Adds keys and (re)sends the subscriptions they land in. */
  add(pubkeys: readonly string[]): void {
    const perSubscription = this.#shape.keysPerFilter * this.#shape.filtersPerSubscription;
    const touched = new Set<number>();
    for (const pubkey of pubkeys) {
      if (this.#known.has(pubkey)) continue;
      this.#known.add(pubkey);
      touched.add(Math.floor(this.#keys.length / perSubscription));
      this.#keys.push(pubkey);
    }
    for (const index of touched) {
      const slice = this.#keys.slice(index * perSubscription, (index + 1) * perSubscription);
      this.#transport.setSubscription(`nwc-${index}`, () => {
        const filters: Filter[] = [];
        for (let i = 0; i < slice.length; i += this.#shape.keysPerFilter) filters.push(this.#filter(slice.slice(i, i + this.#shape.keysPerFilter)));
        return filters;
      });
    }
  }

  /** How many subscriptions each relay holds. */
  get subscriptionCount(): number {
    return Math.ceil(this.#keys.length / (this.#shape.keysPerFilter * this.#shape.filtersPerSubscription));
  }
}
