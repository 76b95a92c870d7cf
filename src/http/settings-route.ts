import type { FastifyPluginAsync } from 'fastify';
import type { Db } from '../db/database.ts';
import { exportSettings } from '../ops/settings-backup.ts';
import { nowSeconds } from '../protocol/nostr-event.ts';
import { requestSigner } from './request-parsing.ts';

/**
 * GET /api/account/settings, NIP-98 signed by the user: their settings (connections' grants,
 * lock, policy, lightning address) for `deposit-bridge export`, which encrypts them to the user's
 * key before anything is written to disk.
 */
export function settingsRoute(deps: { db: Db; publicUrl: () => string }): FastifyPluginAsync {
  const signer = requestSigner(deps.publicUrl);
  return async (app) => {
    app.get('/api/account/settings', async (req) => exportSettings(deps.db, signer(req), nowSeconds()));
  };
}
