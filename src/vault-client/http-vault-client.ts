/**
 * The Vault API v0 over HTTP (docs/vault-api.md): every call signed by the caller's key (NIP-98,
 * or within a session that NIP-98 opened), bounded by a timeout, and every response checked
 * against the shared schemas.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type Dispatcher } from 'undici';
import type { KeyObject } from 'node:crypto';
import type { z } from 'zod';
import type { Event } from 'nostr-tools/pure';
import { sha256 } from '@noble/hashes/sha2.js';
import { msatToString } from '../protocol/amounts.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { httpAuthHeader } from '../protocol/nip98.ts';
import { nowSeconds } from '../protocol/nostr-event.ts';
import { sessionAuthHeader, sessionKey, vaultSessionSchema } from '../protocol/vault-session.ts';
import { tlvRecordsToWire } from '../protocol/nwc-request.ts';
import {
  depositHistorySchema,
  depositSchema,
  depositStatusSchema,
  errorBodySchema,
  grantResponseSchema,
  lockResponseSchema,
  vaultEventSchema,
  vaultInfoSchema,
  vaultInvoiceSchema,
  vaultMetricsSchema,
  vaultPaymentSchema,
  type VaultEvent,
  type VaultPayment,
} from '../protocol/vault-api.ts';
import { silentLogger, type Logger } from '../log.ts';
import {
  VaultError,
  type CreateHoldInvoiceParams,
  type CreateInvoiceParams,
  type EventSubscription,
  type PayParams,
  type TransferParams,
  type VaultClient,
} from './vault-client.ts';

export interface HttpVaultClientOptions {
  /** The operator's base URL exactly as it publishes it (NIP-98 `u` tags are this plus the path). */
  url: string;
  /** The caller's key (the bridge service key) that signs NIP-98 headers. */
  secretKey: Uint8Array;
  /** Per-call timeout in milliseconds (default 10 000). Also bounds connecting an event stream. */
  timeoutMs?: number;
  /** Event stream reconnect backoff: first delay and cap in milliseconds (default 250 and 5 000). */
  reconnectDelayMs?: { initial: number; max: number };
  /** An event stream silent for this long is reconnected (default 45 000: three missed pings). */
  streamIdleTimeoutMs?: number;
  logger?: Logger;
  /** Told of each call's outcome: answered (an error status below 500 counts as answered) and how fast. */
  onCall?: (outcome: { answered: boolean; latencyMs: number }) => void;
  /**
   * Sign calls within a session (docs/vault-api.md, "Sessions"): one NIP-98 signature an hour
   * instead of one per call, for a long-lived caller such as the bridge. Default false: a
   * one-off caller would only add the round trip that opens it.
   */
  sessions?: boolean;
}

interface Session {
  id: string;
  key: KeyObject;
  expiresAt: number;
}

/** A session is replaced this long before the operator's expiry. */
const SESSION_RENEW_MARGIN_SECONDS = 300;
/** After an operator answered that it has no sessions, calls use NIP-98 this long before asking again. */
const SESSIONS_UNSUPPORTED_RETRY_MS = 10 * 60_000;
/** After it failed to open one (an error status), this long: a struggling operator is not asked twice per call. */
const SESSIONS_FAILED_RETRY_MS = 10_000;

/** Error codes of causes that mean the request never left this machine. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_INVALID_URL', 'UND_ERR_INVALID_ARG']);

type Method = 'GET' | 'POST';

export class HttpVaultClient implements VaultClient {
  readonly url: string;
  readonly #secretKey: Uint8Array;
  readonly #timeoutMs: number;
  readonly #reconnect: { initial: number; max: number };
  readonly #idleMs: number;
  readonly #log: Logger;
  readonly #onCall: HttpVaultClientOptions['onCall'];
  readonly #useSessions: boolean;
  #session: Session | null = null;
  #openingSession: Promise<Session | null> | null = null;
  #sessionsOffUntil = 0;

  constructor(options: HttpVaultClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.#secretKey = options.secretKey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#reconnect = options.reconnectDelayMs ?? { initial: 250, max: 5_000 };
    this.#idleMs = options.streamIdleTimeoutMs ?? 45_000;
    this.#log = (options.logger ?? silentLogger).child({ vault: this.url });
    this.#onCall = options.onCall;
    this.#useSessions = options.sessions ?? false;
  }

  info() {
    return this.#call('GET', '/v0/info', undefined, vaultInfoSchema, 'vault info');
  }

  async openDeposit(open: Event) {
    const deposit = await this.#call('POST', '/v0/deposits', { open }, depositSchema, 'a deposit');
    this.#expect(deposit.owner === open.pubkey, 'POST /v0/deposits', 'a deposit owned by the signer of the open statement');
    return deposit;
  }

  async depositStatus(depositId: string) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}`;
    const status = await this.#call('GET', path, undefined, depositStatusSchema, 'a deposit status');
    this.#expect(status.deposit_id === depositId, `GET ${path}`, `the status of deposit ${depositId}`);
    return status;
  }

  async depositHistory(depositId: string) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/history`;
    const history = await this.#call('GET', path, undefined, depositHistorySchema, 'a deposit history');
    this.#expect(
      history.deposit_id === depositId &&
        (history.balance_update === null || history.balance_update.deposit_id === depositId) &&
        history.invoices.every((i) => i.proof.deposit_id === depositId) &&
        history.maintenance.every((m) => m.balance_update.deposit_id === depositId),
      `GET ${path}`,
      `the history of deposit ${depositId}`,
    );
    return history;
  }

  async createInvoice(depositId: string, params: CreateInvoiceParams) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/invoices`;
    const body = {
      ...(params.amountMsat === undefined ? {} : { amount_msat: msatToString(params.amountMsat) }),
      ...(params.description === undefined ? {} : { description: params.description }),
      ...(params.descriptionHash === undefined ? {} : { description_hash: params.descriptionHash }),
      ...(params.expirySeconds === undefined ? {} : { expiry_seconds: params.expirySeconds }),
    };
    const invoice = await this.#call('POST', path, body, vaultInvoiceSchema, 'a vault invoice');
    // An amountless invoice says 0 ("any amount") in the record and in the proof.
    const amount = params.amountMsat ?? 0n;
    this.#expect(
      invoice.amount_msat === amount &&
        invoice.proof.amount_msat === amount &&
        invoice.proof.deposit_id === depositId &&
        invoice.proof.payment_hash === invoice.payment_hash &&
        invoice.hold !== true,
      `POST ${path}`,
      'an invoice for the amount and deposit asked for',
    );
    return invoice;
  }

  async createHoldInvoice(depositId: string, params: CreateHoldInvoiceParams) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/hold-invoices`;
    const body = {
      amount_msat: msatToString(params.amountMsat),
      payment_hash: params.paymentHash,
      ...(params.description === undefined ? {} : { description: params.description }),
      ...(params.descriptionHash === undefined ? {} : { description_hash: params.descriptionHash }),
      ...(params.expirySeconds === undefined ? {} : { expiry_seconds: params.expirySeconds }),
      ...(params.minCltvExpiryDelta === undefined ? {} : { min_cltv_expiry_delta: params.minCltvExpiryDelta }),
    };
    const invoice = await this.#call('POST', path, body, vaultInvoiceSchema, 'a hold invoice');
    this.#expect(
      invoice.hold === true &&
        invoice.payment_hash === params.paymentHash &&
        invoice.amount_msat === params.amountMsat &&
        invoice.proof.amount_msat === params.amountMsat &&
        invoice.proof.deposit_id === depositId &&
        invoice.proof.payment_hash === params.paymentHash,
      `POST ${path}`,
      'a hold invoice for the payment hash, amount and deposit asked for',
    );
    return invoice;
  }

  async settleHoldInvoice(depositId: string, paymentHash: string, preimage: string) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/invoices/${encodeURIComponent(paymentHash)}/settle`;
    const invoice = await this.#call('POST', path, { preimage }, vaultInvoiceSchema, 'a settled hold invoice');
    this.#expect(invoice.payment_hash === paymentHash && invoice.state === 'settled', `POST ${path}`, `the hold invoice ${paymentHash} settled`);
    return invoice;
  }

  async cancelHoldInvoice(depositId: string, paymentHash: string) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/invoices/${encodeURIComponent(paymentHash)}/cancel`;
    const invoice = await this.#call('POST', path, {}, vaultInvoiceSchema, 'a canceled hold invoice');
    this.#expect(invoice.payment_hash === paymentHash && invoice.state === 'canceled', `POST ${path}`, `the hold invoice ${paymentHash} canceled`);
    return invoice;
  }

  async invoiceStatus(depositId: string, paymentHash: string) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/invoices/${encodeURIComponent(paymentHash)}`;
    const invoice = await this.#call('GET', path, undefined, vaultInvoiceSchema, 'a vault invoice');
    this.#expect(invoice.payment_hash === paymentHash, `GET ${path}`, `the invoice with payment hash ${paymentHash}`);
    return invoice;
  }

  async pay(depositId: string, params: PayParams) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/payments`;
    const keysend = params.keysend;
    const target =
      params.invoice !== undefined
        ? { invoice: params.invoice }
        : keysend !== undefined
          ? {
              keysend: {
                destination: keysend.destination,
                ...(keysend.preimage === undefined ? {} : { preimage: keysend.preimage }),
                ...(keysend.tlvRecords === undefined ? {} : { tlv_records: tlvRecordsToWire(keysend.tlvRecords) }),
              },
            }
          : { lnurl: { address: params.lightningAddress } };
    const mpp = params.invoice !== undefined ? params.mpp : undefined;
    const body = {
      ...target,
      amount_msat: msatToString(params.amountMsat),
      max_fee_msat: msatToString(params.maxFeeMsat),
      idempotency_key: params.idempotencyKey,
      authorization: params.authorization,
      ...(mpp === undefined ? {} : { mpp: { total_msat: msatToString(mpp.totalMsat) } }),
    };
    const payment = await this.#call('POST', path, body, vaultPaymentSchema, 'a payment');
    // A keysend with the app's preimage pays its SHA-256.
    const hashOk = keysend?.preimage === undefined || payment.payment_hash === bytesToHex(sha256(hexToBytes(keysend.preimage)));
    this.#expect(
      payment.idempotency_key === params.idempotencyKey && payment.amount_msat === params.amountMsat && payment.fee_msat <= payment.max_fee_msat && hashOk,
      `POST ${path}`,
      'the payment asked for, with a fee within its limit',
    );
    return payment;
  }

  async transfer(depositId: string, params: TransferParams) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/transfers`;
    const purpose = params.purpose;
    const body = {
      // The proof's amount parsed to bigint goes back on the wire as a decimal string.
      destination: { ...params.destination, proof: { ...params.destination.proof, amount_msat: msatToString(params.destination.proof.amount_msat) } },
      amount_msat: msatToString(params.amountMsat),
      max_fee_msat: msatToString(params.maxFeeMsat),
      idempotency_key: params.idempotencyKey,
      purpose: purpose.type,
      grant: params.grant,
      ...(purpose.type === 'payment' ? { payment: { invoice: purpose.invoice, authorization: purpose.authorization } } : {}),
    };
    const payment = await this.#call('POST', path, body, vaultPaymentSchema, 'a transfer');
    this.#expect(
      payment.idempotency_key === params.idempotencyKey && payment.amount_msat === params.amountMsat && payment.fee_msat <= payment.max_fee_msat,
      `POST ${path}`,
      'the transfer asked for, with a fee within its limit',
    );
    return payment;
  }

  async paymentStatus(depositId: string, idempotencyKey: string): Promise<VaultPayment | null> {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/payments/${encodeURIComponent(idempotencyKey)}`;
    try {
      const payment = await this.#call('GET', path, undefined, vaultPaymentSchema, 'a payment');
      this.#expect(payment.idempotency_key === idempotencyKey, `GET ${path}`, `the payment under key ${idempotencyKey}`);
      return payment;
    } catch (error) {
      if (error instanceof VaultError && error.code === 'NOT_FOUND') return null;
      throw error;
    }
  }

  async pushGrant(depositId: string, grant: Event) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/grants`;
    const stored = await this.#call('POST', path, { grant }, grantResponseSchema, 'the stored grant');
    return { connection: stored.connection, createdAt: stored.created_at };
  }

  async lock(depositId: string, lock: Event) {
    const path = `/v0/deposits/${encodeURIComponent(depositId)}/lock`;
    const state = await this.#call('POST', path, { lock }, lockResponseSchema, 'the lock state');
    return { locked: state.locked, createdAt: state.created_at };
  }

  metrics() {
    return this.#call('GET', '/v0/metrics', undefined, vaultMetricsSchema, 'vault metrics');
  }

  /** An answer that is not what was asked for: for a POST, the operator may have acted anyway. */
  #expect(condition: boolean, call: string, expected: string): void {
    if (!condition) throw new VaultError('INTERNAL', `${this.url} ${call}: expected ${expected}`, { outcomeUnknown: call.startsWith('POST') });
  }

  async #call<S extends z.ZodType>(method: Method, path: string, body: object | undefined, schema: S, expected: string): Promise<z.output<S>> {
    if (!this.#onCall) return this.#send(method, path, body, schema, expected);
    const started = performance.now();
    let answered = false;
    try {
      const result = await this.#send(method, path, body, schema, expected);
      answered = true;
      return result;
    } catch (error) {
      answered = error instanceof VaultError && error.status !== null && error.status < 500 && error.code !== 'INTERNAL';
      throw error;
    } finally {
      this.#onCall({ answered, latencyMs: Math.round(performance.now() - started) });
    }
  }

  async #send<S extends z.ZodType>(method: Method, path: string, body: object | undefined, schema: S, expected: string): Promise<z.output<S>> {
    const url = this.url + path;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const session = this.#useSessions ? await this.#currentSession() : null;
    const authorization = session ? sessionAuthHeader(session.id, session.key, url, method, payload, nowSeconds()) : httpAuthHeader(this.#secretKey, url, method, payload);
    try {
      return await this.#exchange(method, path, payload, authorization, schema, expected);
    } catch (error) {
      if (!(session && error instanceof VaultError && error.code === 'SESSION_EXPIRED')) throw error;
      // The operator forgot the session (a restart) or it lapsed; it refused before acting, so sending again is safe.
      if (this.#session === session) this.#session = null;
      const next = await this.#currentSession();
      const again = next ? sessionAuthHeader(next.id, next.key, url, method, payload, nowSeconds()) : httpAuthHeader(this.#secretKey, url, method, payload);
      return this.#exchange(method, path, payload, again, schema, expected);
    }
  }

  /** The session to sign a call in: the open one, a new one, or null to sign with NIP-98. */
  #currentSession(): Promise<Session | null> {
    const session = this.#session;
    if (session && session.expiresAt - SESSION_RENEW_MARGIN_SECONDS > nowSeconds()) return Promise.resolve(session);
    if (Date.now() < this.#sessionsOffUntil) return Promise.resolve(null);
    this.#openingSession ??= this.#openSession().finally(() => {
      this.#openingSession = null;
    });
    return this.#openingSession;
  }

  async #openSession(): Promise<Session | null> {
    const url = `${this.url}/v0/sessions`;
    try {
      const opened = await this.#exchange('POST', '/v0/sessions', undefined, httpAuthHeader(this.#secretKey, url, 'POST'), vaultSessionSchema, 'a session');
      this.#session = { id: opened.session_id, key: sessionKey(opened.secret), expiresAt: opened.expires_at };
      return this.#session;
    } catch (error) {
      if (!(error instanceof VaultError)) throw error;
      // No answer: the call that needed the session was never sent.
      if (error.status === null) throw new VaultError(error.code, error.message, { outcomeUnknown: false, cause: error });
      // An answer without a session: an operator without sessions (no such route), or one failing now.
      const unsupported = error.status === 404;
      this.#sessionsOffUntil = Date.now() + (unsupported ? SESSIONS_UNSUPPORTED_RETRY_MS : SESSIONS_FAILED_RETRY_MS);
      if (unsupported) this.#log.warn({ err: error.message }, 'vault has no sessions; signing each call with NIP-98');
      return null;
    }
  }

  /** One request and its checked answer. */
  async #exchange<S extends z.ZodType>(method: Method, path: string, payload: string | undefined, authorization: string, schema: S, expected: string): Promise<z.output<S>> {
    const url = this.url + path;
    const call = `${method} ${path}`;
    const headers: Record<string, string> = { authorization, accept: 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    // undici's request rather than fetch: a third of fetch's CPU per call (bench/HISTORY.md), and a call per payment.
    let response: Dispatcher.ResponseData;
    let text: string;
    try {
      response = await request(url, { method, headers, body: payload, signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (error) {
      // A pooled connection the operator closed (it restarted) fails at once; a GET is safe to send again.
      const stale = method === 'GET' && !(error instanceof Error && error.name === 'TimeoutError') && causeCode(error) === 'UND_ERR_SOCKET';
      if (!stale) throw this.#transportError(method, call, error, false);
      try {
        response = await request(url, { method, headers, signal: AbortSignal.timeout(this.#timeoutMs) });
      } catch (retryError) {
        throw this.#transportError(method, call, retryError, false);
      }
    }
    const status = response.statusCode;
    try {
      text = await response.body.text();
    } catch (error) {
      throw this.#transportError(method, call, error, true);
    }
    if (status < 200 || status > 299) throw this.#httpError(method, call, status, text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new VaultError('INTERNAL', `${this.url} ${call}: expected ${expected} as JSON, got something else`, { status, outcomeUnknown: method !== 'GET' });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
      throw new VaultError('INTERNAL', `${this.url} ${call}: expected ${expected}; invalid${where}: ${issue?.message ?? 'unknown'}`, {
        status,
        outcomeUnknown: method !== 'GET',
      });
    }
    return parsed.data;
  }

  /**
   * A call that got no answer. For a POST the outcome is unknown unless the request certainly
   * never left (connection refused, no such host): a timeout or a reset may come after the
   * operator acted.
   */
  #transportError(method: Method, call: string, error: unknown, afterHeaders: boolean): VaultError {
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
    const code = causeCode(error);
    const notSent = !afterHeaders && !timedOut && code !== undefined && NOT_SENT_CODES.has(code);
    const reason = timedOut ? `timed out after ${this.#timeoutMs} ms` : `unreachable (${code ?? (error instanceof Error ? error.message : 'network error')})`;
    return new VaultError('UNAVAILABLE', `${this.url} ${call}: ${reason}`, { outcomeUnknown: method !== 'GET' && !notSent, cause: error });
  }

  /**
   * An error status. Only the documented error body is trusted for its code; anything else
   * (a proxy's page) is INTERNAL or UNAVAILABLE, never NOT_FOUND, which would claim nothing was paid.
   */
  #httpError(method: Method, call: string, status: number, text: string): VaultError {
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not the documented body; handled below
    }
    const parsed = errorBodySchema.safeParse(json);
    if (parsed.success) {
      const { code, message } = parsed.data.error;
      // INTERNAL means the operator failed part way: a POST may have taken effect.
      return new VaultError(code, `${this.url} ${call}: ${message}`, { status, outcomeUnknown: method !== 'GET' && code === 'INTERNAL' });
    }
    const code = status === 502 || status === 503 || status === 504 ? 'UNAVAILABLE' : 'INTERNAL';
    return new VaultError(code, `${this.url} ${call}: HTTP ${status} without the Vault API error body`, {
      status,
      outcomeUnknown: method !== 'GET' && status >= 500,
    });
  }

  subscribeEvents(after: number, onEvent: (event: VaultEvent) => Promise<void>, onStatus?: (connected: boolean) => void): EventSubscription {
    const closer = new AbortController();
    let cursor = after;
    const run = async () => {
      let failures = 0;
      while (!closer.signal.aborted) {
        let connected = false;
        try {
          await this.#stream(
            cursor,
            closer.signal,
            () => {
              connected = true;
              failures = 0;
              onStatus?.(true);
            },
            async (event) => {
              await onEvent(event);
              cursor = event.seq;
            },
            () => cursor,
          );
        } catch (error) {
          if (!closer.signal.aborted) this.#log.warn({ err: error instanceof Error ? error.message : String(error) }, 'vault event stream failed');
        }
        if (closer.signal.aborted) return;
        if (connected) onStatus?.(false);
        const cap = Math.min(this.#reconnect.max, this.#reconnect.initial * 2 ** failures);
        failures += 1;
        // Full jitter on the upper half, so many bridges do not reconnect in step.
        await sleep(cap / 2 + Math.random() * (cap / 2), undefined, { signal: closer.signal }).catch(() => undefined);
      }
    };
    void run();
    return { close: () => closer.abort() };
  }

  /** One connection of the event stream; returns when it ends, throws when it fails. */
  async #stream(
    after: number,
    closed: AbortSignal,
    onConnected: () => void,
    deliver: (event: VaultEvent) => Promise<void>,
    cursor: () => number,
  ): Promise<void> {
    const connection = new AbortController();
    const signal = AbortSignal.any([closed, connection.signal]);
    let timer = setTimeout(() => connection.abort(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => connection.abort(new Error(`stream silent for ${this.#idleMs} ms`)), this.#idleMs);
    };
    try {
      const path = `/v0/events?after=${after}`;
      const url = this.url + path;
      const response = await fetch(url, {
        headers: { authorization: httpAuthHeader(this.#secretKey, url, 'GET'), accept: 'text/event-stream' },
        signal,
      });
      if (!response.ok || response.body === null) {
        throw this.#httpError('GET', `GET ${path}`, response.status, await response.text().catch(() => ''));
      }
      onConnected();
      idle();
      const queue: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (message) => queue.push(message) });
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) return;
        idle();
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        while (queue.length > 0) {
          const message = queue.shift();
          if (message === undefined) break;
          const event = this.#parseEvent(message);
          if (event.seq <= cursor()) continue;
          // The handler may be slow; silence while it runs is ours, not the operator's.
          clearTimeout(timer);
          await deliver(event);
          idle();
        }
      }
    } finally {
      clearTimeout(timer);
      connection.abort();
    }
  }

  /**
   * An event the operator sent. An invalid one ends the connection rather than being skipped:
   * skipping could lose a payment's outcome, and the cursor stays before it for the retry.
   */
  #parseEvent(message: EventSourceMessage): VaultEvent {
    let json: unknown;
    try {
      json = JSON.parse(message.data);
    } catch {
      throw new VaultError('INTERNAL', `${this.url} GET /v0/events: expected JSON event data`);
    }
    const parsed = vaultEventSchema.safeParse(json);
    if (!parsed.success) {
      throw new VaultError('INTERNAL', `${this.url} GET /v0/events: expected a vault event; ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
    return parsed.data;
  }
}

/** The `code` of an error or of the first cause that has one (fetch wraps undici's socket errors). */
function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    if ('code' in current && typeof current.code === 'string') return current.code;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}
