import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import { findConnection, requireGrantedMethod, type Connection } from '../deposits/connections.ts';
import { BridgeStopping, type WalletContext } from '../deposits/context.ts';
import type { Db } from '../db/database.ts';
import { randomUUID } from 'node:crypto';
import { REQUEST_MAX_AGE_SECONDS, REQUEST_MAX_SKEW_SECONDS, requestExpired } from '../protocol/authorization.ts';
import { recordAudit } from '../deposits/audit.ts';
import { KIND } from '../protocol/kinds.ts';
import { isStorable, storableText } from '../protocol/storable.ts';
import { Nip47Error, type Nip47ErrorCode } from '../protocol/nip47-error.ts';
import { nowSeconds, signEvent, tagValue } from '../protocol/nostr-event.ts';
import { nwcRequestBodySchema } from '../protocol/nwc-request.ts';
import { decryptContent, encryptContent, requestEncryption, sharedKey, type NwcEncryption } from '../protocol/nwc-encryption.ts';
import type { BridgeKeys } from './keys.ts';
import type { BridgeIdentity } from './methods/method.ts';
import { METHODS } from './methods/registry.ts';
import type { RelayTransport } from './relay-pool.ts';

interface Nip47Response {
  result_type: string;
  result: Record<string, unknown> | null;
  error: { code: Nip47ErrorCode; message: string } | null;
}

/** Requests larger than this are answered with BAD_REQUEST without decrypting. */
const MAX_CONTENT_LENGTH = 64 * 1024;

/**
 * Answers NIP-47 requests addressed to the wallet service key: authenticates the connection,
 * stores the request id before acting (a request seen again gets the stored response and
 * never a second payment), decrypts with the scheme the request names, validates, dispatches
 * to one handler per method, and publishes the encrypted response. A request from a known
 * connection always gets a response.
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
  readonly #keyCache = new Map<string, Uint8Array>();
  #accepting = true;
  #leaseTimer: NodeJS.Timeout | undefined;

  constructor(db: Db, pool: RelayTransport, keys: BridgeKeys, wallet: WalletContext, identity: BridgeIdentity, logger: Logger, options: Partial<ResponderOptions> = {}) {
    this.#db = db;
    this.#pool = pool;
    this.#keys = keys;
    this.#wallet = wallet;
    this.#identity = identity;
    this.#logger = logger;
    this.#options = { maxRequestAgeSeconds: REQUEST_MAX_AGE_SECONDS, leaseSeconds: 30, ...options };
  }

  /**
   * Subscribes to requests for the service key, then keeps its claims alive and takes over
   * requests whose claim lapsed (an instance that died, or this one before a restart).
   */
  async start(): Promise<void> {
    // Requests sent while a relay connection was down are asked for again on reconnect, as far
    // back as the freshness window: older ones would only be refused.
    this.#pool.subscribe(
      () => [{ kinds: [KIND.nwcRequest], '#p': [this.#keys.servicePubkey], since: nowSeconds() - this.#options.maxRequestAgeSeconds }],
      (event) => this.receive(event),
    );
    await this.#takeOverLapsedClaims();
    this.#leaseTimer = setInterval(() => {
      void this.#renewClaims()
        .then(() => this.#takeOverLapsedClaims())
        .catch((error: unknown) => this.#logger.error({ err: error }, 'request lease upkeep failed'));
    }, (this.#options.leaseSeconds * 1000) / 3);
    this.#leaseTimer.unref();
  }

  #leaseUntil(): Date {
    return new Date(Date.now() + this.#options.leaseSeconds * 1000);
  }

  async #renewClaims(): Promise<void> {
    await this.#db
      .updateTable('nwc_requests')
      .set({ lease_until: this.#leaseUntil() })
      .where('claimed_by', '=', this.#instance)
      .where('state', '=', 'processing')
      .execute();
  }

  /** Claims requests still processing whose lease lapsed, each by one instance only, and finishes them. */
  async #takeOverLapsedClaims(): Promise<void> {
    if (!this.#accepting) return;
    const taken = await this.#db
      .updateTable('nwc_requests')
      .set({ claimed_by: this.#instance, lease_until: this.#leaseUntil() })
      .where('event_id', 'in', (eb) =>
        eb.selectFrom('nwc_requests').select('event_id').where('state', '=', 'processing').where('lease_until', '<', new Date()).limit(100).forUpdate().skipLocked(),
      )
      .returning('event')
      .execute();
    if (taken.length > 0) this.#logger.info({ count: taken.length }, 'finishing requests whose claim lapsed');
    for (const { event } of taken) this.#track(this.#process(event, { alreadyClaimed: true }));
  }

  /** Entry point for every event the relays deliver (already signature-checked by the relay client). */
  receive(event: Event): void {
    if (!this.#accepting) return;
    this.#track(this.#process(event, { alreadyClaimed: false }));
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => {
      if (error instanceof BridgeStopping) this.#logger.info('a request in flight is left to be resumed after the stop');
      else this.#logger.error({ err: error }, 'request handling failed');
    });
    this.#inFlight.add(tracked);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  async #process(event: Event, { alreadyClaimed }: { alreadyClaimed: boolean }): Promise<void> {
    if (event.kind !== KIND.nwcRequest || tagValue(event, 'p') !== this.#keys.servicePubkey) return;
    if (!alreadyClaimed && requestExpired(event, nowSeconds())) {
      this.#logger.info({ id: event.id }, 'not executing a request past its expiration tag');
      return;
    }
    const wanted = requestEncryption(event);
    const encryption: NwcEncryption = typeof wanted === 'string' ? wanted : 'nip44_v2';
    const key = this.#sharedKey(encryption, event.pubkey);

    if (typeof wanted !== 'string') {
      await this.#respond(event, encryption, key, errorResponse('unknown', 'UNSUPPORTED_ENCRYPTION', `encryption ${wanted.unsupported} is not supported; use nip44_v2 or nip04`), false);
      return;
    }
    const connection = await findConnection(this.#db, event.pubkey);
    if (!connection) {
      await this.#respond(event, encryption, key, errorResponse(this.#methodOf(event, encryption, key), 'UNAUTHORIZED', 'no wallet is connected to this key'), false);
      return;
    }
    // An event PostgreSQL cannot hold as is is recorded with those characters replaced, and refused.
    const storable = isStorable(event);
    if (!alreadyClaimed) {
      const claimed = await this.#db
        .insertInto('nwc_requests')
        .values({
          event_id: event.id,
          connection_pubkey: connection.pubkey,
          event: JSON.stringify(storable ? event : { ...event, content: storableText(event.content), tags: event.tags.map((t) => t.map(storableText)) }),
          method: null,
          state: 'processing',
          response_event: null,
          finished_at: null,
          claimed_by: this.#instance,
          lease_until: this.#leaseUntil(),
        })
        .onConflict((oc) => oc.column('event_id').doNothing())
        .returning('event_id')
        .executeTakeFirst();
      if (!claimed) {
        const seen = await this.#db.selectFrom('nwc_requests').select(['state', 'response_event']).where('event_id', '=', event.id).executeTakeFirst();
        // Seen before: republish the stored answer; one still in progress answers when it ends.
        if (seen?.state === 'done' && seen.response_event) await this.#pool.publish(seen.response_event).catch(() => undefined);
        return;
      }
    }
    const response = !storable
      ? errorResponse('unknown', 'BAD_REQUEST', 'the request event holds characters that cannot be stored (NUL or an unpaired surrogate)')
      : alreadyClaimed
        ? await this.#answer(event, connection, encryption, key)
        : await this.#answerFresh(event, connection, encryption, key);
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
    await this.#respond(event, encryption, key, response, true);
  }

  /** A request seen for the first time is executed only while fresh (a replay from a relay's store is not). */
  async #answerFresh(event: Event, connection: Connection, encryption: NwcEncryption, key: Uint8Array): Promise<Nip47Response> {
    const now = nowSeconds();
    const maxAge = this.#options.maxRequestAgeSeconds;
    if (event.created_at < now - maxAge || event.created_at > now + REQUEST_MAX_SKEW_SECONDS) {
      this.#logger.info({ id: event.id, created_at: event.created_at }, 'not executing a request outside the freshness window');
      const method = this.#methodOf(event, encryption, key);
      const why = event.created_at < now - maxAge ? `older than ${maxAge} s` : 'dated in the future';
      return errorResponse(method, 'EXPIRED', `request not executed: it is ${why}`);
    }
    return this.#answer(event, connection, encryption, key);
  }

  async #answer(event: Event, connection: Connection, encryption: NwcEncryption, key: Uint8Array): Promise<Nip47Response> {
    if (event.content.length > MAX_CONTENT_LENGTH) return errorResponse('unknown', 'BAD_REQUEST', 'request too large');
    let body: { method: string; params: Record<string, unknown> };
    try {
      const parsed = nwcRequestBodySchema.safeParse(JSON.parse(decryptContent(encryption, key, event.content)));
      if (!parsed.success) return errorResponse('unknown', 'BAD_REQUEST', 'request must be a JSON object with a string `method` and an object `params`');
      body = parsed.data;
    } catch {
      return errorResponse('unknown', 'BAD_REQUEST', `request content does not decrypt (${encryption}) to JSON`);
    }
    await this.#db.updateTable('nwc_requests').set({ method: storableText(body.method).slice(0, 64) }).where('event_id', '=', event.id).execute();
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
      const result = await method.handle({ wallet: this.#wallet, connection, request: event, encryption, key, bridge: this.#identity }, params.data);
      return { result_type: body.method, result, error: null };
    } catch (error) {
      if (error instanceof BridgeStopping) throw error;
      if (error instanceof Nip47Error) return errorResponse(body.method, error.code, error.message);
      this.#logger.error({ err: error, method: body.method, id: event.id }, 'internal error answering a request');
      return errorResponse(body.method, 'INTERNAL', 'internal error');
    }
  }

  /** Encrypts, signs, stores (for a claimed request) and publishes a response. */
  async #respond(request: Event, encryption: NwcEncryption, key: Uint8Array, response: Nip47Response, store: boolean): Promise<void> {
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
      this.#keys.serviceSecret,
    );
    if (store) {
      await this.#db
        .updateTable('nwc_requests')
        .set({ state: 'done', response_event: JSON.stringify(event), finished_at: new Date() })
        .where('event_id', '=', request.id)
        .execute();
    }
    try {
      await this.#pool.publish(event);
    } catch (error) {
      // Stored: a client that asks again gets it republished.
      this.#logger.warn({ id: request.id, err: String(error) }, 'could not publish a response');
    }
  }

  #sharedKey(encryption: NwcEncryption, pubkey: string): Uint8Array {
    const cacheKey = `${encryption}:${pubkey}`;
    let key = this.#keyCache.get(cacheKey);
    if (!key) {
      key = sharedKey(encryption, this.#keys.serviceSecret, pubkey);
      if (this.#keyCache.size > 10_000) this.#keyCache.clear();
      this.#keyCache.set(cacheKey, key);
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
    clearInterval(this.#leaseTimer);
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    // What is still unanswered is handed over at once rather than when the lease lapses.
    await this.#db
      .updateTable('nwc_requests')
      .set({ lease_until: new Date(0) })
      .where('claimed_by', '=', this.#instance)
      .where('state', '=', 'processing')
      .execute();
  }
}

export interface ResponderOptions {
  /** Requests older than this when first seen are not executed (at most the vaults' 300 s). */
  maxRequestAgeSeconds: number;
  /** How long a claim on a request holds without renewal before another instance may take it. */
  leaseSeconds: number;
}

function errorResponse(resultType: string, code: Nip47ErrorCode, message: string): Nip47Response {
  return { result_type: resultType, result: null, error: { code, message } };
}
