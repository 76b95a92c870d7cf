/**
 * The reference vault operator's HTTP face: every endpoint of docs/vault-api.md, NIP-98 or
 * session auth on every call checked against the operator's own base URL, errors as the
 * documented body.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { hex32 } from '../protocol/hex.ts';
import { verifyHttpAuth } from '../protocol/nip98.ts';
import { nowSeconds } from '../protocol/nostr-event.ts';
import type { Result } from '../protocol/result.ts';
import { parseSessionAuth } from '../protocol/vault-session.ts';
import {
  VAULT_ERROR_STATUS,
  createHoldInvoiceRequestSchema,
  createInvoiceRequestSchema,
  grantRequestSchema,
  lockRequestSchema,
  openDepositRequestSchema,
  payRequestSchema,
  transferRequestSchema,
  settleInvoiceRequestSchema,
} from '../protocol/vault-api.ts';
import { silentLogger, type Logger } from '../log.ts';
import { createApp, listen, parseJsonBody, parseWith, sendError, sendJson } from './http.ts';
import type { VaultOperator } from './vault-operator.ts';
import { VaultSessions } from './vault-sessions.ts';

export interface VaultServerOptions {
  operator: VaultOperator;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** How often an idle event stream gets a `: ping` comment. */
  pingIntervalMs?: number;
  logger?: Logger;
}

export interface VaultServer {
  /** The public base URL; NIP-98 `u` tags must be this plus the request's path and query. */
  readonly url: string;
  close(): Promise<void>;
}

/** Events examined per database read while catching a stream up. */
const EVENT_PAGE = 200;

const idParams = z.object({ id: z.string().min(1).max(128) });
const invoiceParams = z.object({ id: z.string().min(1).max(128), payment_hash: hex32 });
const paymentParams = z.object({ id: z.string().min(1).max(128), idempotency_key: z.string().min(1).max(128) });
const emptyBody = z.object({});
const eventCursor = z.string().regex(/^(0|[1-9][0-9]{0,14})$/, 'expected a non-negative integer');
const eventsQuery = z.object({ after: eventCursor.optional() });

export async function startVaultServer(options: VaultServerOptions): Promise<VaultServer> {
  const { operator } = options;
  const log = (options.logger ?? silentLogger).child({ operator: operator.name });
  const pingIntervalMs = options.pingIntervalMs ?? 15_000;
  const app = createApp(log);
  const streams = new Set<() => void>();
  let baseUrl = '';

  const reply = <T>(res: FastifyReply, result: Result<T>, status = 200): FastifyReply =>
    result.ok ? sendJson(res, status, result.value) : sendError(res, VAULT_ERROR_STATUS[result.error.code], result.error.code, result.error.message);

  const sessions = new VaultSessions();

  /** The NIP-98 signer of the request, checked against our public URL, method and raw body. */
  const nip98Caller = (request: FastifyRequest): Result<string> =>
    verifyHttpAuth(
      request.headers.authorization,
      baseUrl + request.url,
      request.method,
      typeof request.body === 'string' ? request.body : undefined,
      nowSeconds(),
    );

  /** The caller of the request: the NIP-98 signer, or the key that opened the session it is signed in. */
  const caller = (request: FastifyRequest): Result<string> => {
    const session = parseSessionAuth(request.headers.authorization);
    if (session === null) return nip98Caller(request);
    if (!session.ok) return session;
    return sessions.caller(session.value, baseUrl + request.url, request.method, typeof request.body === 'string' ? request.body : undefined, nowSeconds());
  };

  app.addHook('onRequest', async (_request, res) => {
    if (operator.faults.down) return sendError(res, 503, 'UNAVAILABLE', 'the operator is offline');
    if (operator.faults.delayMs > 0) await sleep(operator.faults.delayMs);
    return undefined;
  });

  app.get('/v0/info', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    return sendJson(res, 200, operator.info());
  });

  // Opened with NIP-98 only: a session proves the key once, it does not stand in for it here.
  app.post('/v0/sessions', async (request, res) => {
    const who = nip98Caller(request);
    if (!who.ok) return reply(res, who);
    return sendJson(res, 201, sessions.open(who.value, nowSeconds()));
  });

  app.get('/v0/metrics', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    return sendJson(res, 200, operator.metrics());
  });

  app.post('/v0/deposits', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const body = parseJsonBody(request.body, openDepositRequestSchema);
    if (!body.ok) return reply(res, body);
    const opened = operator.openDeposit(who.value, body.value.open);
    if (!opened.ok) return reply(res, opened);
    return sendJson(res, opened.value.created ? 201 : 200, opened.value.deposit);
  });

  app.get('/v0/deposits/:id', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    return reply(res, operator.depositStatus(who.value, params.value.id));
  });

  app.get('/v0/deposits/:id/history', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    return reply(res, operator.depositHistory(who.value, params.value.id));
  });

  app.post('/v0/deposits/:id/invoices', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, createInvoiceRequestSchema);
    if (!body.ok) return reply(res, body);
    return reply(res, operator.createInvoice(who.value, params.value.id, body.value), 201);
  });

  app.post('/v0/deposits/:id/hold-invoices', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, createHoldInvoiceRequestSchema);
    if (!body.ok) return reply(res, body);
    const made = operator.createHoldInvoice(who.value, params.value.id, body.value);
    if (!made.ok) return reply(res, made);
    return sendJson(res, made.value.created ? 201 : 200, made.value.invoice);
  });

  app.post('/v0/deposits/:id/invoices/:payment_hash/settle', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, invoiceParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, settleInvoiceRequestSchema);
    if (!body.ok) return reply(res, body);
    return reply(res, operator.settleHoldInvoice(who.value, params.value.id, params.value.payment_hash, body.value.preimage));
  });

  app.post('/v0/deposits/:id/invoices/:payment_hash/cancel', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, invoiceParams, 'path');
    if (!params.ok) return reply(res, params);
    // No body, or an empty JSON object.
    const body = parseJsonBody(typeof request.body === 'string' && request.body.length > 0 ? request.body : '{}', emptyBody);
    if (!body.ok) return reply(res, body);
    return reply(res, operator.cancelHoldInvoice(who.value, params.value.id, params.value.payment_hash));
  });

  app.get('/v0/deposits/:id/invoices/:payment_hash', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, invoiceParams, 'path');
    if (!params.ok) return reply(res, params);
    return reply(res, operator.invoiceStatus(who.value, params.value.id, params.value.payment_hash));
  });

  app.post('/v0/deposits/:id/payments', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, payRequestSchema);
    if (!body.ok) return reply(res, body);
    const paid = await operator.pay(who.value, params.value.id, body.value);
    if (!paid.ok) return reply(res, paid);
    return sendJson(res, paid.value.created ? 201 : 200, paid.value.payment);
  });

  app.post('/v0/deposits/:id/transfers', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, transferRequestSchema);
    if (!body.ok) return reply(res, body);
    const moved = await operator.transfer(who.value, params.value.id, body.value);
    if (!moved.ok) return reply(res, moved);
    return sendJson(res, moved.value.created ? 201 : 200, moved.value.payment);
  });

  app.get('/v0/deposits/:id/payments/:idempotency_key', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, paymentParams, 'path');
    if (!params.ok) return reply(res, params);
    return reply(res, operator.paymentStatus(who.value, params.value.id, params.value.idempotency_key));
  });

  app.post('/v0/deposits/:id/grants', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, grantRequestSchema);
    if (!body.ok) return reply(res, body);
    return reply(res, operator.pushGrant(who.value, params.value.id, body.value.grant));
  });

  app.post('/v0/deposits/:id/lock', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const params = parseWith(request.params, idParams, 'path');
    if (!params.ok) return reply(res, params);
    const body = parseJsonBody(request.body, lockRequestSchema);
    if (!body.ok) return reply(res, body);
    return reply(res, operator.lock(who.value, params.value.id, body.value.lock));
  });

  app.get('/v0/events', async (request, res) => {
    const who = caller(request);
    if (!who.ok) return reply(res, who);
    const query = parseWith(request.query, eventsQuery, 'query');
    if (!query.ok) return reply(res, query);
    const resume = parseWith(query.value.after ?? request.headers['last-event-id'] ?? '0', eventCursor, 'event cursor (after or Last-Event-ID)');
    if (!resume.ok) return reply(res, resume);
    let cursor = Number(resume.value);

    res.hijack();
    const raw = res.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    raw.write(': connected\n\n');
    let open = true;
    const end = () => {
      if (!open) return;
      open = false;
      clearInterval(ping);
      unsubscribe();
      streams.delete(end);
      raw.end();
    };
    // Re-reads from the cursor on every change, so events are sent in seq order exactly once.
    const flush = () => {
      if (!open) return;
      if (operator.faults.down) return end();
      for (;;) {
        const page = operator.eventsFor(who.value, cursor, EVENT_PAGE);
        for (const event of page.events) raw.write(`id: ${event.seq}\ndata: ${event.json}\n\n`);
        cursor = page.through;
        if (page.examined < EVENT_PAGE) return;
      }
    };
    const ping = setInterval(() => raw.write(': ping\n\n'), pingIntervalMs);
    const unsubscribe = operator.onChange(flush);
    streams.add(end);
    raw.on('close', end);
    raw.on('error', end);
    flush();
    return res;
  });

  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  baseUrl = await listen(app, options.host, options.port);
  log.info({ url: baseUrl }, 'vault operator listening');
  return {
    url: baseUrl,
    close: async () => {
      await app.close();
    },
  };
}
