/**
 * The devnet's Nostr relay: @nostr-relay/core on a `ws` server with an in-memory event store.
 * Regular and replaceable events are kept. Ephemeral kinds 20000–29999 are forwarded, and the
 * NWC ones (requests 23194, responses 23195, notifications 23196 and 23197) are also retained
 * for a short time (60 s by default), so a client that subscribes again with `since` after a
 * disconnection receives what was sent meanwhile (NIP-47 asks relays to keep these events
 * until consumed or stale). Incoming messages are checked by @nostr-relay/validator.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { NostrRelay } from '@nostr-relay/core';
import {
  EventRepository,
  EventType,
  EventUtils,
  LogLevel,
  createOutgoingNoticeMessage,
  type Client,
  type Event as RelayEvent,
  type EventRepositoryUpsertResult,
  type Filter,
  type Logger as RelayLogger,
  type BroadcastPlugin,
} from '@nostr-relay/common';
import { Validator } from '@nostr-relay/validator';
import { silentLogger, type Logger } from '../log.ts';
import { hexToBytes } from '../protocol/hex.ts';
import { verifySchnorr } from '../protocol/schnorr.ts';

/**
 * The relay library checks every event's BIP-340 signature in pure JS (about 1 ms each, and a
 * payment brings the relay six events: request, response, four notifications). The devnet relay
 * has it make the same check through libsecp256k1 (`verifySchnorr`: native or WASM), four to
 * twenty times cheaper; the library still does everything else (id, shape, expiry, delegation).
 */
EventUtils.isSigValid = (event: RelayEvent): boolean => {
  try {
    return verifySchnorr(hexToBytes(event.sig), hexToBytes(event.id), hexToBytes(event.pubkey));
  } catch {
    return false;
  }
};

/** A filter made ready to match many events: its lists as sets (a bridge's filters hold hundreds of keys each). */
interface CompiledFilter {
  ids: ReadonlySet<string> | undefined;
  authors: ReadonlySet<string> | undefined;
  kinds: ReadonlySet<number> | undefined;
  since: number | undefined;
  until: number | undefined;
  /** `#x` filters: an event matches with any one of the values. */
  tags: { name: string; values: ReadonlySet<string> }[];
}

/** Filters are compiled once, when first matched: the relay library keeps a subscription's filter objects as they came. */
const compiledFilters = new WeakMap<Filter, CompiledFilter>();

function compiled(filter: Filter): CompiledFilter {
  let made = compiledFilters.get(filter);
  if (made) return made;
  const tags: CompiledFilter['tags'] = [];
  // The validator lets through `#` and a single letter only (NIP-01; `&` of NIP-91 is not enabled).
  for (const [key, values] of Object.entries(filter)) {
    if (key.length === 2 && key[0] === '#' && Array.isArray(values)) tags.push({ name: key[1]!, values: new Set(values.map(String)) });
  }
  made = {
    ids: filter.ids ? new Set(filter.ids) : undefined,
    authors: filter.authors ? new Set(filter.authors) : undefined,
    kinds: filter.kinds ? new Set(filter.kinds) : undefined,
    since: filter.since,
    until: filter.until,
    tags,
  };
  compiledFilters.set(filter, made);
  return made;
}

/** True when the event matches every condition of the filter (NIP-01), tag filters included. */
function matchesFilter(event: RelayEvent, filter: Filter): boolean {
  const f = compiled(filter);
  if (f.ids && !f.ids.has(event.id)) return false;
  if (f.authors && !f.authors.has(event.pubkey)) return false;
  if (f.kinds && !f.kinds.has(event.kind)) return false;
  if (f.since !== undefined && event.created_at < f.since) return false;
  if (f.until !== undefined && event.created_at > f.until) return false;
  return f.tags.every(({ name, values }) => event.tags.some((t) => t[0] === name && t[1] !== undefined && values.has(t[1])));
}

/**
 * The relay library matches live events against ids, authors, kinds and times only, so a `#p`
 * subscription would get every event of its kinds: it matches with the full filter instead,
 * before it writes a message for the subscriber at all.
 */
EventUtils.isMatchingFilter = matchesFilter;

function isExpired(event: RelayEvent, nowSec: number): boolean {
  const expiration = EventUtils.extractExpirationTimestamp(event);
  return expiration !== null && expiration <= nowSec;
}

/** Newest first; on a tie, the lowest id first (NIP-01's rule for replaceable events). */
function newestFirst(a: RelayEvent, b: RelayEvent): number {
  return b.created_at - a.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** NWC kinds the devnet relay retains although they are ephemeral: request, response, notifications. */
export const RETAINED_EPHEMERAL_KINDS: readonly number[] = [23194, 23195, 23196, 23197];
/** How long retained ephemeral events are kept by default. */
export const DEFAULT_EPHEMERAL_RETENTION_SECONDS = 60;

/**
 * An in-memory EventRepository: regular, replaceable and addressable events. Ephemeral events
 * are never stored by `upsert`; `retain` keeps one until a deadline, and `find` answers with
 * it until then (a REQ returns it with the stored events).
 */
export class MemoryEventRepository extends EventRepository {
  readonly #events = new Map<string, RelayEvent>();
  /** Replaceable address (`kind:pubkey[:d]`) → id of the event that holds it. */
  readonly #addresses = new Map<string, string>();
  /** Retained ephemeral events and when they are dropped (ms since the epoch). */
  readonly #retained = new Map<string, { event: RelayEvent; untilMs: number }>();

  /** Keeps an ephemeral event findable until `untilMs` (a resend of the same id extends it). */
  retain(event: RelayEvent, untilMs: number): void {
    this.#retained.set(event.id, { event, untilMs });
  }

  /** Retained ephemeral events not yet past their deadline (past ones are dropped). */
  #liveRetained(nowMs: number): RelayEvent[] {
    const live: RelayEvent[] = [];
    for (const [id, entry] of this.#retained) {
      if (entry.untilMs <= nowMs) this.#retained.delete(id);
      else live.push(entry.event);
    }
    return live;
  }

  isSearchSupported(): boolean {
    return false;
  }

  upsert(event: RelayEvent): EventRepositoryUpsertResult {
    const type = EventUtils.getType(event.kind);
    // The relay forwards ephemeral events without storing them; never keep one that reaches here.
    if (type === EventType.EPHEMERAL) return { isDuplicate: false };
    if (this.#events.has(event.id)) return { isDuplicate: true };
    const address =
      type === EventType.REPLACEABLE
        ? `${event.kind}:${event.pubkey}`
        : type === EventType.PARAMETERIZED_REPLACEABLE
          ? `${event.kind}:${event.pubkey}:${EventUtils.extractDTagValue(event) ?? ''}`
          : null;
    if (address !== null) {
      const currentId = this.#addresses.get(address);
      const current = currentId === undefined ? undefined : this.#events.get(currentId);
      if (current && newestFirst(current, event) < 0) return { isDuplicate: true };
      if (current) this.#events.delete(current.id);
      this.#addresses.set(address, event.id);
    }
    this.#events.set(event.id, event);
    return { isDuplicate: false };
  }

  find(filter: Filter): RelayEvent[] {
    if (filter.search !== undefined) return [];
    const nowMs = Date.now();
    const now = Math.floor(nowMs / 1000);
    const candidates = [...this.#events.values(), ...this.#liveRetained(nowMs)];
    const matches = candidates.filter((e) => matchesFilter(e, filter) && !isExpired(e, now)).sort(newestFirst);
    return filter.limit === undefined ? matches : matches.slice(0, filter.limit);
  }

  async destroy(): Promise<void> {
    this.#events.clear();
    this.#addresses.clear();
    this.#retained.clear();
  }
}

/**
 * The relay plugin that retains NWC events: every broadcast event of a retained ephemeral kind
 * is kept in the repository for `seconds` before it goes out to the live subscribers.
 */
export class EphemeralRetentionPlugin implements BroadcastPlugin {
  readonly #repository: MemoryEventRepository;
  readonly #kinds: ReadonlySet<number>;
  readonly #ms: number;

  constructor(repository: MemoryEventRepository, seconds: number, kinds: readonly number[] = RETAINED_EPHEMERAL_KINDS) {
    this.#repository = repository;
    this.#kinds = new Set(kinds);
    this.#ms = seconds * 1000;
  }

  async broadcast(event: RelayEvent, next: () => Promise<void>): Promise<void> {
    if (this.#ms > 0 && this.#kinds.has(event.kind) && EventUtils.getType(event.kind) === EventType.EPHEMERAL) {
      this.#repository.retain(event, Date.now() + this.#ms);
    }
    return next();
  }
}

/** One socket as the relay library sees it, with the ids of its open subscriptions (`subscriptionCounts`). */
class RelayClient implements Client {
  readonly #socket: WebSocket;
  readonly subscriptionIds = new Set<string>();

  constructor(socket: WebSocket) {
    this.#socket = socket;
  }

  get readyState(): 0 | 1 | 2 | 3 {
    return this.#socket.readyState;
  }

  send(data: string): void {
    this.#socket.send(data);
  }
}

export interface RelayOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Keeps stored events across a stop and start in the same process; a fresh store by default. */
  repository?: MemoryEventRepository;
  /**
   * How long NWC events (kinds 23194–23197, ephemeral) stay findable after they were
   * published (default 60 s; 0 keeps none, as a plain relay would).
   */
  ephemeralRetentionSeconds?: number;
  logger?: Logger;
}

export interface DevnetRelay {
  /** `ws://host:port` */
  readonly url: string;
  readonly port: number;
  readonly repository: MemoryEventRepository;
  /** For tests: the number of open subscriptions of each connected client, in connection order. */
  subscriptionCounts(): number[];
  /** Closes every socket and the listener; the port is free again when this resolves. */
  stop(): Promise<void>;
}

function relayLogger(log: Logger): RelayLogger {
  return {
    setLogLevel: () => undefined,
    debug: (message) => log.debug(message),
    info: (message) => log.info(message),
    warn: (message) => log.warn(message),
    error: (message) => log.error(message),
  };
}

export async function startRelay(options: RelayOptions = {}): Promise<DevnetRelay> {
  const host = options.host ?? '127.0.0.1';
  const log = (options.logger ?? silentLogger).child({ component: 'relay' });
  const repository = options.repository ?? new MemoryEventRepository();
  const relay = new NostrRelay(repository, {
    logger: relayLogger(log),
    logLevel: LogLevel.WARN,
    // The defaults (20 per socket, evicting the oldest silently; 1 s result cache) break a bridge with many users.
    maxSubscriptionsPerClient: 1000,
    filterResultCacheTtl: 0,
    // Without this it drops an event id seen in the last 10 minutes: a client resending a
    // request (or tests of the bridge's own deduplication) would go unheard.
    eventHandlingResultCacheTtl: 0,
  });
  relay.register(new EphemeralRetentionPlugin(repository, options.ephemeralRetentionSeconds ?? DEFAULT_EPHEMERAL_RETENTION_SECONDS));
  const validator = new Validator();
  const clients = new Set<RelayClient>();

  const server = createServer((request, response) => {
    if (request.headers.accept?.includes('application/nostr+json')) {
      response.writeHead(200, { 'content-type': 'application/nostr+json', 'access-control-allow-origin': '*' });
      response.end(JSON.stringify({ name: 'deposit-bridge devnet relay', supported_nips: [1, 11, 40], software: '@nostr-relay/core' }));
      return;
    }
    response.writeHead(426, { 'content-type': 'text/plain' });
    response.end('use a Nostr client (WebSocket)');
  });
  const wss = new WebSocketServer({ server, maxPayload: 512 * 1024 });

  wss.on('connection', (socket, request) => {
    const client = new RelayClient(socket);
    clients.add(client);
    relay.handleConnection(client, request.socket.remoteAddress);
    socket.on('message', async (data) => {
      try {
        const raw = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
        const message = await validator.validateIncomingMessage(raw);
        if (message[0] === 'REQ') client.subscriptionIds.add(message[1]);
        if (message[0] === 'CLOSE') client.subscriptionIds.delete(message[1]);
        await relay.handleMessage(client, message);
      } catch (error) {
        const reason = error instanceof SyntaxError ? 'invalid: message is not JSON' : error instanceof Error ? error.message : 'invalid message';
        client.send(JSON.stringify(createOutgoingNoticeMessage(reason)));
      }
    });
    socket.on('close', () => {
      clients.delete(client);
      relay.handleDisconnect(client);
    });
    socket.on('error', (error) => log.debug({ err: error.message }, 'relay socket error'));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 7447, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no TCP address');
  const { port } = address;
  const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url }, 'relay listening');

  return {
    url,
    port,
    repository,
    subscriptionCounts: () => [...clients].map((c) => c.subscriptionIds.size),
    stop: async () => {
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      // Clears the library's per-socket state and caches; the repository is left to its owner.
      await relay.destroy();
    },
  };
}
