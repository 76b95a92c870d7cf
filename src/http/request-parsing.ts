import type { z } from 'zod';
import { ApiRefusal } from '../deposits/api-refusal.ts';
import { verifyHttpAuth } from '../protocol/nip98.ts';
import { nowSeconds } from '../protocol/nostr-event.ts';
import { isStorable } from '../protocol/storable.ts';

/** What signing and body parsing read of a request (a fastify request, whatever its logger). */
export interface RequestParts {
  body: unknown;
  url: string;
  method: string;
  headers: { authorization?: string | undefined };
}

/** The NIP-98 signer of a request, checked against the public URL, method and raw body. */
export function requestSigner(publicUrl: () => string): (req: RequestParts) => string {
  return (req) => {
    const raw = typeof req.body === 'string' ? req.body : undefined;
    const auth = verifyHttpAuth(req.headers.authorization, publicUrl() + req.url, req.method, raw, nowSeconds());
    if (!auth.ok) throw new ApiRefusal('UNAUTHORIZED', auth.error.message);
    return auth.value;
  };
}

/** The JSON body of a request (kept raw for NIP-98), checked against `schema`. */
export function jsonBody<S extends z.ZodType>(req: RequestParts, schema: S, expected: string): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(typeof req.body === 'string' ? req.body : '');
  } catch {
    throw new ApiRefusal('BAD_REQUEST', 'body must be JSON');
  }
  if (!isStorable(json)) throw new ApiRefusal('BAD_REQUEST', 'body holds characters that cannot be stored (NUL or an unpaired surrogate)');
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new ApiRefusal('BAD_REQUEST', `body must be ${expected}`);
  return parsed.data;
}
