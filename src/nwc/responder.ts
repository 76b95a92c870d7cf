import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { ExpressionBuilder } from 'kysely';
import type { Db } from '../db/database.ts';
import type { Database } from '../db/schema.ts';
import { recordAudit } from '../deposits/audit.ts';
import { requireGrantedMethod, StaleConnection, type Connection } from '../deposits/connections.ts';
import { BridgeStopping, type WalletContext } from '../deposits/context.ts';
import { REQUEST_MAX_AGE_SECONDS, REQUEST_MAX_SKEW_SECONDS, requestExpired } from '../protocol/authorization.ts';
import { KIND } from '../protocol/kinds.ts';
import { Nip47Error, type Nip47ErrorCode } from '../protocol/nip47-error.ts';
import { nowSeconds, signEvent, tagValue } from '../protocol/nostr-event.ts';
import { decryptContent, encryptContent, requestEncryption, sharedKey, type NwcEncryption } from '../protocol/nwc-encryption.ts';
import { nwcRequestBodySchema } from '../protocol/nwc-request.ts';
import { isStorable, storableText } from '../protocol/storable.ts';
import { ConnectionCache, type GrantHeld } from './connection-cache.ts';
import { RequestRecords } from './request-records.ts';
import type { BridgeKeys } from './keys.ts';
import type { BridgeIdentity } from './methods/method.ts';
import { METHODS } from './methods/registry.ts';
import { RateLimiter, DEFAULT_RATE_LIMIT, type RateLimit } from './rate-limiter.ts';
import { RecentAnswers } from './recent-answers.ts';
import type { RelayTransport } from './relay-pool.ts';
import { DEFAULT_SUBSCRIPTION_SHAPE, ServiceKeySubscriptions, type SubscriptionShape } from './service-subscriptions.ts';
import { inShard, type Shard } from './shard.ts';

interface Nip47Response {
  result_type: string;
  result: Record<string, unknown> | null;
  error: { code: Nip47ErrorCode; message: string } | null;
}

/** A request's body as read (decrypted, JSON, the NIP-47 shape), or the answer refusing it. */
type RequestRead = { body: { method: string; params: Record<string, unknown> } } | { refused: Nip47Response };

/**
 * Methods that change nothing: their request is never claimed nor stored. It is answered on the
 * cached connection, and the answer published once the connection's row proved to still hold
 * that grant (docs/architecture.md, "Several instances"). A repeat seen soon after gets the same
 * answer again (`RECENT_READ_ONLY_ANSWERS`), a later one a new answer.
 */
const READ_ONLY_METHODS: ReadonlySet<string> = new Set(['get_info', 'get_balance', 'get_budget']);
/** Read-only answers kept in memory for repeats of their request (a second relay's copy): about a kilobyte each. */
const RECENT_READ_ONLY_ANSWERS = 4_096;

/** Shared keys kept (one per connection and scheme), all dropped at once past this. */
const SHARED_KEYS_KEPT = 10_000;

/** How many times a request is answered anew because its connection changed meanwhile; the last pass takes the grant as it then is. */
const MAX_PASSES = 3;

/** Requests larger than this are answered with BAD_REQUEST without decrypting. */
const MAX_CONTENT_LENGTH = 64 * 1024;
/** Connections read per query when loading them (one REQ's worth of keys with the default subscription shape). */
const CONNECTIONS_PAGE = 5_000;
/** How often an instance looks for connections registered at another instance. */
const NEW_CONNECTIONS_POLL_MS = 5_000;

export interface ResponderOptions {
  /** Requests older than this when first seen are not executed (at most the vaults' 300 s). */
  maxRequestAgeSeconds: number;
  /** How long a claim on a request holds without renewal before another instance may take it. */
  leaseSeconds: number;
  rateLimit: RateLimit;
  subscriptionShape: SubscriptionShape;
  /** Counts each response by method and outcome, with its latency. */
  metrics?: { requestAnswered(method: string, errorCode: string | null, seconds: number): void } | undefined;
  /** Listen only for the connections in this key range (docs/scaling.md); absent: all. */
  shard?: Shard | undefined;
}

/** The wallet service key a request was addressed to, and the connection it belongs to (null: the bridge-wide key). */
interface ServiceKey {
  secret: Uint8Array;
  pubkey: string;
  connectionPubkey: string | null;
}

/**
 * Answers NIP-47 requests addressed to the bridge's wallet service keys (one per connection,
 * and the bridge-wide one of older connections): authenticates the connection, stores the
 * request id before acting (a request seen again gets the stored response and never a second
 * payment; read-only requests are not stored), decrypts with the scheme the request names,
 * validates, dispatches to one handler per method, and publishes the encrypted response. A
 * request from a known connection always gets a response.
 */
export class NwcResponder {
  readonly #db: Db;
  readonly #pool: RelayTransport;
  readonly #keys: BridgeKeys;
  readonly #wallet: WalletContext;
  readonly #identity: BridgeIdentity;
  readonly #logger: Logger;
  readonly #options: ResponderOptions;
  readonly #instance = randomUUID();
  readonly #inFlight = new Set<Promise<void>>();
  /** Ids of the requests being answered now. */
  readonly #working = new Set<string>();
  /** Shared keys by scheme, service key and the request's author; `#keyCount` of them in all. */
  readonly #keyCache: Record<NwcEncryption, Map<string, Map<string, Uint8Array>>> = { nip44_v2: new Map(), nip04: new Map() };
  #keyCount = 0;
  readonly #connections: ConnectionCache;
  readonly #records: RequestRecords;
  /** Answers to the newest read-only requests. */
  readonly #recentReadOnlyAnswers = new RecentAnswers(RECENT_READ_ONLY_ANSWERS);
  /** Per-connection service pubkey → connection pubkey. */
  readonly #serviceKeys = new Map<string, string>();
  readonly #subscriptions: ServiceKeySubscriptions;
  readonly #rateLimiter: RateLimiter;
  /** When each request being worked on was received, by id (for the latency metric). */
  readonly #receivedAt = new Map<string, number>();
  /** Each request's own logger: every line about it carries its request id and connection. */
  readonly #requestLogs = new WeakMap<Event, Logger>();
  #accepting = true;
  #timers: NodeJS.Timeout[] = [];
  #connectionsSeenUntil = new Date(0);

  constructor(db: Db, pool: RelayTransport, keys: BridgeKeys, wallet: WalletContext, identity: BridgeIdentity, logger: Logger, options: Partial<ResponderOptions> = {}) {
    this.#db = db;
    this.#pool = pool;
    this.#keys = keys;
    this.#wallet = wallet;
    this.#identity = identity;
    this.#logger = logger;
    this.#options = {
      maxRequestAgeSeconds: REQUEST_MAX_AGE_SECONDS,
      leaseSeconds: 30,
      rateLimit: DEFAULT_RATE_LIMIT,
      subscriptionShape: DEFAULT_SUBSCRIPTION_SHAPE,
      ...options,
    };
    this.#rateLimiter = new RateLimiter(this.#options.rateLimit);
    this.#connections = new ConnectionCache(db);
    this.#records = new RequestRecords(db);
    // Requests sent while a relay connection was down are asked for again on reconnect, as far
    // back as the freshness window: older ones would only be refused.
    this.#subscriptions = new ServiceKeySubscriptions(
      pool,
      (pubkeys) => ({ kinds: [KIND.nwcRequest], '#p': pubkeys, since: nowSeconds() - this.#options.maxRequestAgeSeconds }),
      this.#options.subscriptionShape,
    );
  }

  /**
   * Subscribes to requests for every wallet service key, then keeps its claims alive, takes
   * over requests whose claim lapsed (an instance that died, or this one before a restart),
   * and picks up connections registered at other instances.
   */
  async start(): Promise<void> {
    this.#pool.onEvent((event) => this.receive(event));
    // Every instance keeps the bridge-wide key (connections from before per-connection keys; the
    // claim makes one answer): a shard with no connections yet is still live.
    this.#subscriptions.add([this.#keys.servicePubkey]);
    await this.#loadNewConnections();
    await this.#takeOverLapsedClaims();
    const upkeep = setInterval(() => {
      void this.#renewClaims()
        .then(() => this.#takeOverLapsedClaims())
        .catch((error: unknown) => this.#logger.error({ err: error }, 'request lease upkeep failed'));
    }, (this.#options.leaseSeconds * 1000) / 3);
    const poll = setInterval(() => {
      void this.#loadNewConnections().catch((error: unknown) => this.#logger.error({ err: error }, 'could not load new connections'));
    }, NEW_CONNECTIONS_POLL_MS);
    this.#timers = [upkeep, poll];
    for (const t of this.#timers) t.unref();
  }

  /** Starts listening on a connection's wallet service key (called when it is registered here). */
  listenFor(connection: Pick<Connection, 'pubkey' | 'servicePubkey'>): void {
    // A grant registered here (new, changed or revoked) is read anew by the next request.
    this.#connections.forget(connection.pubkey);
    if (connection.servicePubkey === null || !inShard(connection.servicePubkey, this.#options.shard)) return;
    this.#serviceKeys.set(connection.servicePubkey, connection.pubkey);
    this.#subscriptions.add([connection.servicePubkey]);
  }

  /** How many subscriptions the responder holds on each relay. */
  get subscriptionCount(): number {
    return this.#subscriptions.subscriptionCount;
  }

  /** Loads connections registered since the last look, a page at a time (a start with 100 000 of them never holds every row at once). */
  async #loadNewConnections(): Promise<void> {
    const since = this.#connectionsSeenUntil;
    let newest: Date | undefined;
    let after: string | undefined;
    for (;;) {
      let query = this.#db.selectFrom('connections').select(['pubkey', 'service_pubkey', 'created_at']).where('service_pubkey', 'is not', null).where('created_at', '>=', since);
      if (after !== undefined) query = query.where('pubkey', '>', after);
      const rows = await query.orderBy('pubkey').limit(CONNECTIONS_PAGE).execute();
      const mine = rows.filter((r) => r.service_pubkey !== null && inShard(r.service_pubkey, this.#options.shard));
      for (const row of mine) this.#serviceKeys.set(row.service_pubkey!, row.pubkey);
      for (const row of rows) if (newest === undefined || row.created_at > newest) newest = row.created_at;
      this.#subscriptions.add(mine.map((r) => r.service_pubkey!));
      const last = rows.at(-1);
      if (!last || rows.length < CONNECTIONS_PAGE) break;
      after = last.pubkey;
    }
    // A second back: a row committed late with an earlier timestamp is not missed.
    if (newest) this.#connectionsSeenUntil = new Date(newest.getTime() - 1000);
  }

  #leaseUntil(): Date {
    return new Date(Date.now() + this.#options.leaseSeconds * 1000);
  }

  async #renewClaims(): Promise<void> {
    await this.#db
      .updateTable('nwc_requests')
      .set({ lease_until: this.#leaseUntil() })
      .where('event_id', 'in', (eb) => this.#ownClaims(eb))
      .execute();
  }

  /**
   * The requests this instance is working on, locked in event id order: every statement that
   * locks several requests' rows takes them in that order, so none of them deadlocks another.
   */
  #ownClaims(eb: ExpressionBuilder<Database, 'nwc_requests'>) {
    return eb.selectFrom('nwc_requests').select('event_id').where('claimed_by', '=', this.#instance).where('state', '=', 'processing').orderBy('event_id').forUpdate();
  }

  /** Claims requests still processing whose lease lapsed, each by one instance only, and finishes them. */
  async #takeOverLapsedClaims(): Promise<void> {
    if (!this.#accepting) return;
    const taken = await this.#db
      .updateTable('nwc_requests')
      .set({ claimed_by: this.#instance, lease_until: this.#leaseUntil() })
      .where('event_id', 'in', (eb) =>
        eb.selectFrom('nwc_requests').select('event_id').where('state', '=', 'processing').where('lease_until', '<', new Date()).orderBy('event_id').limit(100).forUpdate().skipLocked(),
      )
      .returning('event')
      .execute();
    if (taken.length > 0) this.#logger.info({ count: taken.length }, 'finishing requests whose claim lapsed');
    for (const { event } of taken) this.#track(event.id, this.#process(event, { alreadyClaimed: true }), false);
  }

  /**
   * Entry point for every event the relays deliver (already signature-checked by the relay
   * client). A request already being answered here (the same one from another relay) is left to
   * that answer.
   */
  receive(event: Event): void {
    if (!this.#accepting || this.#working.has(event.id)) return;
    this.#working.add(event.id);
    this.#track(event.id, this.#process(event, { alreadyClaimed: false }), true);
  }

  /** Keeps the work on a request among the requests in flight until it ends (a failure logged); `received`: it came from a relay. */
  #track(requestId: string, work: Promise<void>, received: boolean): void {
    const end = () => {
      this.#inFlight.delete(tracked);
      this.#receivedAt.delete(requestId);
      if (received) this.#working.delete(requestId);
    };
    const tracked: Promise<void> = work.then(end, (error: unknown) => {
      if (error instanceof BridgeStopping) this.#logger.info('a request in flight is left to be resumed after the stop');
      else this.#logger.error({ err: error }, 'request handling failed');
      end();
    });
    this.#inFlight.add(tracked);
  }

  /** The wallet service key an event is addressed to, if it is one of ours. */
  #serviceKeyOf(event: Event): ServiceKey | undefined {
    const pubkey = tagValue(event, 'p');
    if (pubkey === undefined) return undefined;
    if (pubkey === this.#keys.servicePubkey) return { secret: this.#keys.serviceSecret, pubkey, connectionPubkey: null };
    const connectionPubkey = this.#serviceKeys.get(pubkey);
    if (connectionPubkey === undefined) return undefined;
    return { ...this.#keys.forConnection(connectionPubkey), connectionPubkey };
  }

  async #process(event: Event, { alreadyClaimed }: { alreadyClaimed: boolean }): Promise<void> {
    if (event.kind !== KIND.nwcRequest) return;
    const service = this.#serviceKeyOf(event);
    if (!service) return;
    const answeredBefore = this.#recentReadOnlyAnswers.get(event.id);
    if (answeredBefore) {
      await this.#pool.publish(answeredBefore).catch(() => undefined);
      return;
    }
    this.#receivedAt.set(event.id, performance.now());
    if (!alreadyClaimed && requestExpired(event, nowSeconds())) {
      this.#log(event).info('not executing a request past its expiration tag');
      return;
    }
    const wanted = requestEncryption(event);
    const encryption: NwcEncryption = typeof wanted === 'string' ? wanted : 'nip44_v2';
    const key = this.#sharedKey(encryption, service, event.pubkey);

    if (typeof wanted !== 'string') {
      await this.#respond(event, service, encryption, key, errorResponse('unknown', 'UNSUPPORTED_ENCRYPTION', `encryption ${wanted.unsupported} is not supported; use nip44_v2 or nip04`), false);
      return;
    }
    // An event PostgreSQL cannot hold as is is recorded with those characters replaced, and refused.
    const storable = isStorable(event);
    // Read before the claim (reading is not acting), so the claim records the method at once.
    const read = storable && !alreadyClaimed ? this.#read(event, encryption, key) : undefined;
    const readOnly = read !== undefined && 'body' in read && READ_ONLY_METHODS.has(read.body.method) ? read.body.method : undefined;
    let claimed = alreadyClaimed;
    // Each pass reads the connection (from memory, then from the database once it proved stale).
    for (let pass = 1; ; pass++) {
      const connection = this.#connections.cached(event.pubkey) ?? (await this.#connections.read(event.pubkey));
      // A connection answers on its own service key only (the bridge-wide one for older connections).
      if (!connection || (connection.servicePubkey ?? this.#keys.servicePubkey) !== service.pubkey) {
        await this.#respond(event, service, encryption, key, errorResponse(this.#methodOf(event, encryption, key), 'UNAUTHORIZED', 'no wallet is connected to this key'), false);
        return;
      }
      if (pass === 1 && !alreadyClaimed && !this.#rateLimiter.take(connection.pubkey)) {
        // Not stored: the same request sent again later is answered on its merits.
        await this.#respond(event, service, encryption, key, errorResponse(this.#methodOf(event, encryption, key), 'RATE_LIMITED', 'too many requests from this connection; retry in a few seconds'), false);
        return;
      }
      const lastPass = pass >= MAX_PASSES;
      // Checked while the answer is made; the answer is published only if the grant held.
      const grantCheck = readOnly ? this.#connections.stillHolds(connection, lastPass) : undefined;
      grantCheck?.catch(() => undefined);
      if (!claimed && !readOnly) {
        const claim = await this.#claim(event, connection, storable, read, lastPass);
        if (claim === 'seen') return;
        if (claim === 'stale') {
          this.#connections.forget(event.pubkey);
          continue;
        }
        claimed = true;
      }
      let response: Nip47Response;
      try {
        response = !storable
          ? errorResponse('unknown', 'BAD_REQUEST', 'the request event holds characters that cannot be stored (NUL or an unpaired surrogate)')
          : alreadyClaimed
            ? await this.#answer(event, service, connection, encryption, key, alreadyClaimed)
            : await this.#answerFresh(event, service, connection, encryption, key, read, grantCheck);
      } catch (error) {
        // A read-only answer found stale is made again, as when its grant check fails.
        if (!(error instanceof StaleConnection) || (lastPass && !grantCheck)) throw error;
        this.#connections.forget(event.pubkey);
        continue;
      }
      if (response.error) {
        await recordAudit(this.#db, {
          userPubkey: connection.userPubkey,
          connectionPubkey: connection.pubkey,
          requestEventId: event.id,
          method: response.result_type,
          code: response.error.code,
          message: response.error.message,
        });
      }
      if (grantCheck && !(await grantCheck)) {
        this.#connections.forget(event.pubkey);
        continue;
      }
      if (readOnly) {
        void this.#connections.noteUse(connection.pubkey).catch((error: unknown) => this.#log(event).warn({ err: error }, "could not note the connection's last use"));
      }
      await this.#respond(event, service, encryption, key, response, claimed ? 'claimed' : 'recent');
      return;
    }
  }

  /**
   * Claims a request before acting on it: its row is inserted, only while the connection's row
   * still holds the grant `connection` was read with (`lastPass`: whatever it holds). `seen`: it
   * was claimed before (a repeat, or another instance), and its stored answer is republished if
   * there is one; `stale`: the connection changed.
   */
  async #claim(event: Event, connection: Connection, storable: boolean, read: RequestRead | undefined, lastPass: boolean): Promise<'claimed' | 'seen' | 'stale'> {
    const claimed = await this.#records.claim({
      eventId: event.id,
      connectionPubkey: connection.pubkey,
      grantCreatedAt: lastPass ? null : BigInt(connection.grant.createdAt),
      event: JSON.stringify(storable ? event : { ...event, content: storableText(event.content), tags: event.tags.map((t) => t.map(storableText)) }),
      method: read && 'body' in read ? storableText(read.body.method).slice(0, 64) : null,
      instance: this.#instance,
      leaseUntil: this.#leaseUntil(),
    });
    if (claimed) return 'claimed';
    return (await this.#republishStored(event.id)) ? 'seen' : 'stale';
  }

  /** Republishes the stored answer of a request seen before; false when the request was never recorded. */
  async #republishStored(eventId: string): Promise<boolean> {
    const seen = await this.#db.selectFrom('nwc_requests').select(['state', 'response_event']).where('event_id', '=', eventId).executeTakeFirst();
    if (!seen) return false;
    // One still in progress answers when it ends.
    if (seen.state === 'done' && seen.response_event) await this.#pool.publish(seen.response_event).catch(() => undefined);
    return true;
  }

  /** A request seen for the first time is executed only while fresh (a replay from a relay's store is not). */
  async #answerFresh(event: Event, service: ServiceKey, connection: Connection, encryption: NwcEncryption, key: Uint8Array, read?: RequestRead, grantCheck?: Promise<GrantHeld | null>): Promise<Nip47Response> {
    const now = nowSeconds();
    const maxAge = this.#options.maxRequestAgeSeconds;
    if (event.created_at < now - maxAge || event.created_at > now + REQUEST_MAX_SKEW_SECONDS) {
      this.#log(event).info({ created_at: event.created_at }, 'not executing a request outside the freshness window');
      const method = this.#methodOf(event, encryption, key);
      const why = event.created_at < now - maxAge ? `older than ${maxAge} s` : 'dated in the future';
      return errorResponse(method, 'EXPIRED', `request not executed: it is ${why}`);
    }
    return this.#answer(event, service, connection, encryption, key, false, read, grantCheck);
  }

  /** The request's body, decrypted and checked, or the BAD_REQUEST answer it gets. */
  #read(event: Event, encryption: NwcEncryption, key: Uint8Array): RequestRead {
    if (event.content.length > MAX_CONTENT_LENGTH) return { refused: errorResponse('unknown', 'BAD_REQUEST', 'request too large') };
    try {
      const parsed = nwcRequestBodySchema.safeParse(JSON.parse(decryptContent(encryption, key, event.content)));
      if (!parsed.success) return { refused: errorResponse('unknown', 'BAD_REQUEST', 'request must be a JSON object with a string `method` and an object `params`') };
      return { body: parsed.data };
    } catch {
      return { refused: errorResponse('unknown', 'BAD_REQUEST', `request content does not decrypt (${encryption}) to JSON`) };
    }
  }

  /**
   * `read`: the body as read before the claim, which then recorded its method; read here
   * otherwise. `resumed`: the request was claimed before this process took it (its lease lapsed).
   * `grantCheck`: a read-only request's (`MethodContext.grantCheck`).
   */
  async #answer(
    event: Event,
    service: ServiceKey,
    connection: Connection,
    encryption: NwcEncryption,
    key: Uint8Array,
    resumed: boolean,
    read?: RequestRead,
    grantCheck?: Promise<GrantHeld | null>,
  ): Promise<Nip47Response> {
    const got = read ?? this.#read(event, encryption, key);
    if ('refused' in got) return got.refused;
    const body = got.body;
    if (!read) await this.#db.updateTable('nwc_requests').set({ method: storableText(body.method).slice(0, 64) }).where('event_id', '=', event.id).execute();
    const method = METHODS.get(body.method);
    if (!method) return errorResponse(body.method, 'NOT_IMPLEMENTED', `method ${body.method} is not implemented`);
    try {
      requireGrantedMethod(connection, body.method, nowSeconds());
      if (!isStorable(body.params)) return errorResponse(body.method, 'BAD_REQUEST', 'invalid params: characters that cannot be stored (NUL or an unpaired surrogate)');
      const params = method.params.safeParse(body.params);
      if (!params.success) {
        const issue = params.error.issues[0];
        return errorResponse(body.method, 'BAD_REQUEST', `invalid params: ${issue ? `${issue.path.join('.') || 'params'}: ${issue.message}` : 'invalid'}`);
      }
      const result = await method.handle(
        { wallet: this.#wallet, connection, request: event, encryption, key, bridge: this.#identity, servicePubkey: service.pubkey, rawParams: body.params, resumed, grantCheck },
        params.data,
      );
      return { result_type: body.method, result, error: null };
    } catch (error) {
      if (error instanceof BridgeStopping || error instanceof StaleConnection) throw error;
      if (error instanceof Nip47Error) return errorResponse(body.method, error.code, error.message);
      this.#log(event).error({ err: error, method: body.method }, 'internal error answering a request');
      return errorResponse(body.method, 'INTERNAL', 'internal error');
    }
  }

  /**
   * Encrypts, signs with the key the request was addressed to, stores and publishes a response.
   * `keep`: 'claimed' completes the request's claimed row with it; 'recent' keeps it in memory
   * for repeats of a read-only request; false keeps nothing.
   */
  async #respond(request: Event, service: ServiceKey, encryption: NwcEncryption, key: Uint8Array, response: Nip47Response, keep: 'claimed' | 'recent' | false): Promise<void> {
    const event = signEvent(
      {
        kind: KIND.nwcResponse,
        created_at: nowSeconds(),
        tags: [
          ['p', request.pubkey],
          ['e', request.id],
        ],
        content: encryptContent(encryption, key, JSON.stringify(response)),
      },
      service.secret,
    );
    if (keep === 'claimed') await this.#records.complete(request.id, event);
    if (keep === 'recent') this.#recentReadOnlyAnswers.add(request.id, event);
    const receivedAt = this.#receivedAt.get(request.id);
    const seconds = receivedAt === undefined ? 0 : (performance.now() - receivedAt) / 1000;
    this.#options.metrics?.requestAnswered(response.result_type, response.error?.code ?? null, seconds);
    // One line per answered request; the method as the app named it, cut short (it is the app's text).
    // Through the request's own logger when something else was logged about it; otherwise with
    // the same fields and no logger made for one line.
    const line = { method: response.result_type.slice(0, 64), outcome: response.error?.code ?? 'success', ms: Math.round(seconds * 1000), stored: keep === 'claimed' };
    const requestLog = this.#requestLogs.get(request);
    if (requestLog) requestLog.info(line, 'nwc request answered');
    else this.#logger.info({ request_id: request.id, connection: request.pubkey, ...line }, 'nwc request answered');
    try {
      await this.#pool.publish(event);
    } catch (error) {
      // Kept: a client that asks again gets it republished.
      this.#log(request).warn({ err: String(error) }, 'could not publish a response');
    }
  }

  #log(event: Event): Logger {
    let log = this.#requestLogs.get(event);
    if (!log) {
      log = this.#logger.child({ request_id: event.id, connection: event.pubkey });
      this.#requestLogs.set(event, log);
    }
    return log;
  }

  #sharedKey(encryption: NwcEncryption, service: ServiceKey, pubkey: string): Uint8Array {
    const byService = this.#keyCache[encryption];
    let byAuthor = byService.get(service.pubkey);
    let key = byAuthor?.get(pubkey);
    if (!key) {
      key = sharedKey(encryption, service.secret, pubkey);
      if (this.#keyCount >= SHARED_KEYS_KEPT) {
        for (const cache of Object.values(this.#keyCache)) cache.clear();
        this.#keyCount = 0;
        byAuthor = undefined;
      }
      if (!byAuthor) byService.set(service.pubkey, (byAuthor = new Map()));
      byAuthor.set(pubkey, key);
      this.#keyCount++;
    }
    return key;
  }

  #methodOf(event: Event, encryption: NwcEncryption, key: Uint8Array): string {
    try {
      return nwcRequestBodySchema.parse(JSON.parse(decryptContent(encryption, key, event.content))).method;
    } catch {
      return 'unknown';
    }
  }

  /** Stops taking requests and waits (up to `timeoutMs`) for those in flight to be answered. */
  async drain(timeoutMs: number): Promise<void> {
    this.#accepting = false;
    for (const t of this.#timers) clearInterval(t);
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    // What is still unanswered is handed over at once rather than when the lease lapses.
    await this.#db
      .updateTable('nwc_requests')
      .set({ lease_until: new Date(0) })
      .where('event_id', 'in', (eb) => this.#ownClaims(eb))
      .execute();
  }
}

function errorResponse(resultType: string, code: Nip47ErrorCode, message: string): Nip47Response {
  return { result_type: resultType, result: null, error: { code, message } };
}
