import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { Relay } from 'nostr-tools/relay';

/** Reconnect delays after a relay drops; nostr-tools' default starts at 10 s. */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 5_000, 10_000];

interface RelayState {
  url: string;
  relay: Relay | undefined;
  /** True once the subscription got EOSE on the current connection. */
  live: boolean;
}

/**
 * One websocket per relay, reconnecting with backoff (with jitter on the first connection,
 * nostr-tools' own backoff after), one subscription re-sent on every reconnect, and publishes
 * that succeed when any relay accepts.
 */
export class RelayPool {
  readonly #relays: RelayState[];
  readonly #logger: Logger;
  #filters: Filter[] | undefined;
  #onEvent: ((event: Event) => void) | undefined;
  #closed = false;

  constructor(urls: readonly string[], logger: Logger) {
    this.#relays = urls.map((url) => ({ url, relay: undefined, live: false }));
    this.#logger = logger;
  }

  get urls(): string[] {
    return this.#relays.map((r) => r.url);
  }

  /** Subscribes on every relay; returns at once, connecting in the background until each answers. */
  subscribe(filters: Filter[], onEvent: (event: Event) => void): void {
    this.#filters = filters;
    this.#onEvent = onEvent;
    for (const state of this.#relays) void this.#connect(state, 0);
  }

  async #connect(state: RelayState, attempt: number): Promise<void> {
    if (this.#closed) return;
    try {
      const relay = new Relay(state.url, { enableReconnect: true, enablePing: true });
      relay.resubscribeBackoff = RECONNECT_BACKOFF_MS;
      await relay.connect({ timeout: 5_000 });
      if (this.#closed) {
        relay.close();
        return;
      }
      state.relay = relay;
      relay.onclose = () => {
        state.live = false;
      };
      this.#logger.info({ relay: state.url }, 'relay connected');
      relay.subscribe(this.#filters ?? [], {
        onevent: (event) => this.#onEvent?.(event),
        oneose: () => {
          state.live = true;
        },
        onclose: (reason) => {
          state.live = false;
          if (!this.#closed) this.#logger.warn({ relay: state.url, reason }, 'relay subscription closed');
        },
      });
    } catch (error) {
      const base = RECONNECT_BACKOFF_MS[Math.min(attempt, RECONNECT_BACKOFF_MS.length - 1)] ?? 10_000;
      const delay = base / 2 + Math.random() * base;
      if (attempt === 0) this.#logger.warn({ relay: state.url, err: String(error) }, 'relay not reachable; retrying');
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      return this.#connect(state, attempt + 1);
    }
  }

  /** True when at least one relay has the subscription live (EOSE seen on an open socket). */
  isLive(): boolean {
    return this.#relays.some((r) => r.live && r.relay?.connected === true);
  }

  /** Publishes to every connected relay; resolves when one accepts, rejects when none does. */
  async publish(event: Event): Promise<void> {
    const attempts = this.#relays.filter((r) => r.relay?.connected).map((r) => r.relay!.publish(event));
    if (attempts.length === 0) throw new Error('no relay connected');
    await Promise.any(attempts);
  }

  close(): void {
    this.#closed = true;
    for (const state of this.#relays) {
      state.relay?.close();
      state.live = false;
    }
  }
}
