/**
 * Lightning addresses over HTTP: the LNURL-pay routes payers' wallets call (open to any origin,
 * answering errors as LNURL does: `{"status":"ERROR","reason":…}`), and the owner's calls to
 * choose, read or free their address (NIP-98 signed, the bridge API's own error bodies).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, RawServerDefault } from 'fastify';
import { z } from 'zod';
import type { Db } from '../db/database.ts';
import { ApiRefusal, type ApiErrorCode } from '../deposits/api-refusal.ts';
import { findAddressOfUser, removeAddress, setAddress } from '../lnurl/addresses.ts';
import type { LnurlService } from '../lnurl/pay.ts';
import type { Result, VaultErrorCode } from '../protocol/result.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';

export interface LnurlRouteDependencies {
  db: Db;
  lnurl: LnurlService;
  /** The base URL clients use (NIP-98 `u` tags are checked against it). */
  publicUrl: () => string;
}

const HTTP_STATUS: Partial<Record<VaultErrorCode, number>> = { BAD_REQUEST: 400, NOT_FOUND: 404, QUOTA_EXCEEDED: 429, UNAVAILABLE: 503, INTERNAL: 500 };

const callbackQuerySchema = z.object({
  amount: z.string({ error: 'amount (msat) is required, once' }),
  comment: z.string({ error: 'comment may be given once' }).optional(),
  nostr: z.string({ error: 'nostr may be given once' }).optional(),
});
const nameParams = z.object({ name: z.string() });
const verifyParams = z.object({ name: z.string(), paymentHash: z.string() });
const addressBodySchema = z.strictObject({ name: z.string().max(256) });

/** CORS for the LNURL routes only: wallets in browsers fetch them from other origins. */
function cors(reply: FastifyReply): FastifyReply {
  return reply.header('access-control-allow-origin', '*').header('access-control-allow-methods', 'GET, OPTIONS').header('access-control-allow-headers', 'content-type');
}

function sendLnurl(reply: FastifyReply, result: Result<Record<string, unknown>>): FastifyReply {
  cors(reply);
  if (result.ok) return reply.status(200).send(result.value);
  return reply.status(HTTP_STATUS[result.error.code] ?? 400).send({ status: 'ERROR', reason: result.error.message });
}

/** What the routes read of a request (whatever logger the server was made with). */
interface RequestView {
  params: unknown;
  query: unknown;
  body: unknown;
  url: string;
  method: string;
  headers: { authorization?: string | undefined };
  log: { error(obj: object, msg: string): void };
}

/** Registers `/.well-known/lnurlp/:name`, `/lnurlp/:name/callback`, `/lnurlp/:name/verify/:paymentHash` and `/api/address`. */
export function registerLnurlRoutes<L extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>, deps: LnurlRouteDependencies): void {
  const { lnurl } = deps;
  // Any failure inside an LNURL route is answered the LNURL way, with CORS, never a stack trace.
  const guarded =
    (handler: (req: RequestView) => Promise<Result<Record<string, unknown>>>) =>
    async (req: RequestView, reply: FastifyReply) => {
      let result: Result<Record<string, unknown>>;
      try {
        result = await handler(req);
      } catch (error) {
        req.log.error({ err: error }, 'lnurl route failed');
        result = { ok: false, error: { code: 'INTERNAL', message: 'internal error' } };
      }
      return sendLnurl(reply, result);
    };
  const badRequest = (message: string): Result<Record<string, unknown>> => ({ ok: false, error: { code: 'BAD_REQUEST', message } });

  // Set before anything runs, so even a request fastify itself refuses (a malformed query) keeps CORS.
  const withCors = { onRequest: async (_req: unknown, reply: FastifyReply) => void cors(reply) };

  app.get(
    '/.well-known/lnurlp/:name',
    withCors,
    guarded(async (req) => lnurl.payRequest(nameParams.parse(req.params).name)),
  );

  app.get(
    '/lnurlp/:name/callback',
    withCors,
    guarded(async (req) => {
      const query = callbackQuerySchema.safeParse(req.query);
      if (!query.success) return badRequest(query.error.issues[0]?.message ?? 'bad query');
      return lnurl.callback(nameParams.parse(req.params).name, query.data);
    }),
  );

  app.get(
    '/lnurlp/:name/verify/:paymentHash',
    withCors,
    guarded(async (req) => {
      const params = verifyParams.parse(req.params);
      return lnurl.verify(params.name, params.paymentHash);
    }),
  );

  for (const url of ['/.well-known/lnurlp/:name', '/lnurlp/:name/callback', '/lnurlp/:name/verify/:paymentHash']) {
    app.options(url, async (_req, reply) => cors(reply).status(204).send());
  }

  const signer = requestSigner(deps.publicUrl);
  const describe = (name: string) => ({ name, address: lnurl.addressOf(name), lnurlp: lnurl.payRequestUrl(name) });

  // The owner chooses (or changes) their address: body {"name": "…"}.
  app.put('/api/address', async (req) => {
    const user = signer(req);
    const body = jsonBody(req, addressBodySchema, '{"name": "<a-z 0-9 - _ .>"}');
    const set = await setAddress(deps.db, user, body.name);
    if (!set.ok) throw new ApiRefusal(apiCode(set.error.code), set.error.message);
    return describe(set.value.name);
  });

  app.get('/api/address', async (req) => {
    const user = signer(req);
    const address = await findAddressOfUser(deps.db, user);
    if (!address) throw new ApiRefusal('NOT_FOUND', 'you have no lightning address');
    return describe(address.name);
  });

  app.delete('/api/address', async (req) => {
    const user = signer(req);
    if (!(await removeAddress(deps.db, user))) throw new ApiRefusal('NOT_FOUND', 'you have no lightning address');
    return { removed: true };
  });
}

function apiCode(code: VaultErrorCode): ApiErrorCode {
  return code === 'NOT_FOUND' || code === 'CONFLICT' ? code : 'BAD_REQUEST';
}
