/** Small HTTP pieces shared by the devnet's servers (vault operators, auditor, control). */
import { fastify, type FastifyInstance, type FastifyReply } from 'fastify';
import type { z } from 'zod';
import { fail, ok, type Result } from '../protocol/result.ts';
import type { Logger } from '../log.ts';

/**
 * A fastify app that keeps request bodies as raw strings (NIP-98 hashes the exact bytes; the
 * handler parses JSON itself) and answers every framework error and unknown route with the
 * documented error body: `{"error": {"code", "message"}}`, never a stack trace.
 */
export function createApp(logger: Logger): FastifyInstance {
  // Path ids up to the schemas' 128 characters reach the route (fastify's default stops at 100).
  const app = fastify({ logger: false, forceCloseConnections: true, bodyLimit: 256 * 1024, return503OnClosing: true, routerOptions: { maxParamLength: 256 } });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 404, 'NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`);
  });
  app.setErrorHandler((error, request, reply) => {
    const status = typeof error === 'object' && error !== null && 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      sendError(reply, 400, 'BAD_REQUEST', error instanceof Error ? error.message : 'bad request');
      return;
    }
    logger.error({ err: error, method: request.method, path: request.url.split('?')[0] }, 'request failed');
    sendError(reply, 500, 'INTERNAL', 'internal error');
  });
  return app;
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify({ error: { code, message } }));
}

/** JSON for the wire: bigint msats become decimal strings, the Vault API's form. */
export function wireJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(wireJson(body));
}

/** Parses a raw JSON body with a schema; the failure names the first bad field. */
export function parseJsonBody<S extends z.ZodType>(raw: unknown, schema: S): Result<z.output<S>> {
  if (typeof raw !== 'string' || raw.length === 0) return fail('BAD_REQUEST', 'expected a JSON body');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return fail('BAD_REQUEST', 'body is not valid JSON');
  }
  return parseWith(json, schema, 'body');
}

export function parseWith<S extends z.ZodType>(value: unknown, schema: S, what: string): Result<z.output<S>> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return ok(parsed.data);
  const issue = parsed.error.issues[0];
  const path = issue && issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
  return fail('BAD_REQUEST', `invalid ${what}${path}: ${issue?.message ?? 'unknown problem'}`);
}

/** Listens and returns the base URL (`http://host:port`, IPv6 hosts in brackets). */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
