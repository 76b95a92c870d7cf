import type { FastifyPluginAsync } from 'fastify';
import type { WalletContext } from '../deposits/context.ts';
import { restoreBodySchema, restoreToJson, restoreUser } from '../ops/restore.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';

/**
 * POST /api/restore, NIP-98 signed by the user, body `{"deposit_open": <their deposit-open
 * statement>}`: rebuilds the user's deposits, balances and history from every vault operator
 * (`src/ops/restore.ts`). Answers 200 with each operator's outcome, including those that failed.
 */
export function restoreRoute(deps: { wallet: WalletContext; publicUrl: () => string }): FastifyPluginAsync {
  const signer = requestSigner(deps.publicUrl);
  return async (app) => {
    app.post('/api/restore', async (req) => {
      const user = signer(req);
      const { deposit_open } = jsonBody(req, restoreBodySchema, '{"deposit_open": <deposit-open event>}');
      const results = await restoreUser(deps.wallet, user, deposit_open);
      return { operators: results.map(restoreToJson) };
    });
  };
}
