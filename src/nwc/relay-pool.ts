import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { Relay } from 'nostr-tools/relay';

/** Delays between connection attempts to a relay, growing with each failure (jitter added). */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 5_000, 10_000];

interface RelayState {
  url: string;
  relay: Relay | undefined;
  /** True once the subscription got EOSE on the current connection. */
  live: boolean;
}

/** What the responder needs of relays: a subscription and a way to publish. */
export interface RelayTransport {
  /** `filters` is asked again at every (re)subscription, so a `since` in it can follow the clock. */
  subscribe(filters: () => Filter[], onEvent: (event: Event) => void): void;
  publish(event: Event): Promise<void>;
}

/**
 * One websocket per relay and one subscription on each. The pool reconnects by itself, with
 * backoff and jitter, whatever ended the connection (nostr-tools' own reconnect gives up after
 * an abnormal closure), and resubscribes each time. Publishes succeed when any relay accepts.
 */
export class RelayPool implements RelayTransport {
  readonly #relays: RelayState[];
  readonly #logger: Logger;
  #filters: () => Filter[] = () => [];
  #onEvent: ((event: Event) => void) | undefined;
  #closed = false;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #connectListeners: Array<(url: string) => void> = [];

  constructor(urls: readonly string[], logger: Logger) {
    this.#relays = urls.map((url) => ({ url, relay: undefined, live: false }));
    this.#logger = logger;
  }

  get urls(): string[] {
    return this.#relays.map((r) => r.url);
  }

  /** Subscribes on every relay; returns at once, connecting in the background until each answers. */
  subscribe(filters: () => Filter[], onEvent: (event: Event) => void): void {
    this.#filters = filters;
    this.#onEvent = onEvent;
    for (const state of this.#relays) void this.#connect(state, 0);
  }

  async #connect(state: RelayState, attempt: number): Promise<void> {
    if (this.#closed) return;
    const relay = new Relay(state.url, { enableReconnect: false, enablePing: true });
    try {
      await relay.connect({ timeout: 5_000 });
    } catch (error) {
      if (attempt === 0) this.#logger.warn({ relay: state.url, err: String(error) }, 'relay not reachable; retrying');
      this.#retry(state, attempt + 1);
      return;
    }
    if (this.#closed) {
      relay.close();
      return;
    }
    state.relay = relay;
    relay.onclose = () => {
      state.live = false;
      if (state.relay !== relay || this.#closed) return;
      state.relay = undefined;
      this.#logger.warn({ relay: state.url }, 'relay connection lost; reconnecting');
      this.#retry(state, 0);
    };
    this.#logger.info({ relay: state.url }, 'relay connected');
    relay.subscribe(
      this.#filters(),
      {
        onevent: (event) => this.#onEvent?.(event),
        oneose: () => {
          state.live = true;
          for (const listener of this.#connectListeners) listener(state.url);
        },
        onclose: () => {
          state.live = false;
        },
      },
    );
  }

  #retry(state: RelayState, attempt: number): void {
    if (this.#closed) return;
    const base = RECONNECT_BACKOFF_MS[Math.min(attempt, RECONNECT_BACKOFF_MS.length - 1)] ?? 10_000;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#connect(state, attempt);
    }, base / 2 + Math.random() * base);
    timer.unref();
    this.#timers.add(timer);
  }

  /** True when at least one relay has the subscription live (EOSE seen on an open socket). */
  isLive(): boolean {
    return this.#relays.some((r) => r.live && r.relay?.connected === true);
  }

  /** Each relay and whether its subscription is live. */
  status(): { url: string; live: boolean }[] {
    return this.#relays.map((r) => ({ url: r.url, live: r.live && r.relay?.connected === true }));
  }

  /** Publishes to every connected relay; resolves when one accepts, rejects when none does. */
  async publish(event: Event): Promise<void> {
    const attempts = this.#relays.flatMap((r) => (r.relay?.connected ? [r.relay.publish(event)] : []));
    if (attempts.length === 0) throw new Error('no relay connected');
    await Promise.any(attempts);
  }

  /** Calls `listener` each time a relay (re)connects: a restarted relay may have lost replaceable events. */
  onConnect(listener: (url: string) => void): void {
    this.#connectListeners.push(listener);
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    for (const state of this.#relays) {
      state.relay?.close();
      state.relay = undefined;
      state.live = false;
    }
  }
}
