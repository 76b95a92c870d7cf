import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { Filter } from 'nostr-tools/filter';
import { AbstractRelay as Relay } from 'nostr-tools/abstract-relay';
import WebSocket from 'ws';
import { hasValidSignature } from '../protocol/nostr-event.ts';

/** Delays between connection attempts to a relay, growing with each failure (jitter added). */
const RECONNECT_BACKOFF_MS = [250, 500, 1_000, 2_000, 5_000, 10_000];

/** What the NWC layer needs of relays: named subscriptions it can update, and publishing. */
export interface RelayTransport {
  /** Where every event of every subscription goes. */
  onEvent(handler: (event: Event) => void): void;
  /**
   * Opens or replaces subscription `id` on every relay (a REQ with the same id replaces the
   * previous one, NIP-01). `filters` is asked again at every (re)send, so a `since` in it follows
   * the clock; after a reconnect every subscription is sent again.
   */
  setSubscription(id: string, filters: () => Filter[]): void;
  publish(event: Event): Promise<void>;
}

interface RelayState {
  url: string;
  relay: Relay | undefined;
  /** Subscriptions that got EOSE on the current connection. */
  eosed: Set<string>;
}

/**
 * One websocket per relay. The pool reconnects by itself, with backoff and jitter, whatever
 * ended the connection (nostr-tools' own reconnect gives up after an abnormal closure), and
 * sends every subscription again each time. Publishes succeed when any relay accepts.
 */
export class RelayPool implements RelayTransport {
  readonly #relays: RelayState[];
  readonly #logger: Logger;
  readonly #subscriptions = new Map<string, () => Filter[]>();
  #onEvent: ((event: Event) => void) | undefined;
  #started = false;
  #closed = false;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #connectListeners: Array<(url: string) => void> = [];

  constructor(urls: readonly string[], logger: Logger) {
    this.#relays = urls.map((url) => ({ url, relay: undefined, eosed: new Set() }));
    this.#logger = logger;
  }

  get urls(): string[] {
    return this.#relays.map((r) => r.url);
  }

  onEvent(handler: (event: Event) => void): void {
    this.#onEvent = handler;
  }

  setSubscription(id: string, filters: () => Filter[]): void {
    this.#subscriptions.set(id, filters);
    if (!this.#started) {
      this.#started = true;
      for (const state of this.#relays) void this.#connect(state, 0);
      return;
    }
    for (const state of this.#relays) if (state.relay?.connected) this.#send(state, state.relay, id, filters);
  }

  #send(state: RelayState, relay: Relay, id: string, filters: () => Filter[]): void {
    state.eosed.delete(id);
    relay.subscribe(filters(), {
      id,
      onevent: (event) => this.#onEvent?.(event),
      oneose: () => {
        const first = state.eosed.size === 0;
        state.eosed.add(id);
        if (first) for (const listener of this.#connectListeners) listener(state.url);
      },
      onclose: () => {
        state.eosed.delete(id);
      },
    });
  }

  async #connect(state: RelayState, attempt: number): Promise<void> {
    if (this.#closed) return;
    // Every delivered event's id and signature are checked here (WASM secp256k1), once.
    // `ws` rather than Node's built-in WebSocket: less CPU per frame (bench/HISTORY.md), and
    // nostr-tools pings over it with real ping frames.
    const relay = new Relay(state.url, {
      verifyEvent: hasValidSignature,
      enableReconnect: false,
      enablePing: true,
      websocketImplementation: WebSocket as unknown as typeof globalThis.WebSocket,
    });
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
    state.eosed.clear();
    // A relay refuses a REQ it finds too large with a NOTICE: say so, it means missed requests.
    relay.onnotice = (message) => this.#logger.warn({ relay: state.url, message }, 'relay notice');
    relay.onclose = () => {
      state.eosed.clear();
      if (state.relay !== relay || this.#closed) return;
      state.relay = undefined;
      this.#logger.warn({ relay: state.url }, 'relay connection lost; reconnecting');
      this.#retry(state, 0);
    };
    this.#logger.info({ relay: state.url, subscriptions: this.#subscriptions.size }, 'relay connected');
    for (const [id, filters] of this.#subscriptions) this.#send(state, relay, id, filters);
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

  #live(state: RelayState): boolean {
    return state.relay?.connected === true && this.#subscriptions.size > 0 && [...this.#subscriptions.keys()].every((id) => state.eosed.has(id));
  }

  /** True when at least one relay has every subscription live (EOSE seen on an open socket). */
  isLive(): boolean {
    return this.#relays.some((r) => this.#live(r));
  }

  /** Each relay and whether its subscriptions are live. */
  status(): { url: string; live: boolean }[] {
    return this.#relays.map((r) => ({ url: r.url, live: this.#live(r) }));
  }

  /** Publishes to every connected relay; resolves when one accepts, rejects when none does. */
  async publish(event: Event): Promise<void> {
    const attempts: Promise<string>[] = [];
    for (const { relay } of this.#relays) if (relay?.connected) attempts.push(relay.publish(event));
    if (attempts.length === 0) throw new Error('no relay connected');
    await (attempts.length === 1 ? attempts[0] : Promise.any(attempts));
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
      state.eosed.clear();
    }
  }
}
