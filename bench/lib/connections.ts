/** Connections for the bench: registered through the bridge's API as the CLI does, or written straight into the database. */
import { randomBytes } from 'node:crypto';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { Db } from '../../src/db/database.ts';
import { grantTerms, signGrant } from '../../src/protocol/grant.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';

export const BENCH_METHODS = ['get_info', 'get_balance', 'make_invoice', 'pay_invoice', 'lookup_invoice', 'list_transactions'];

export interface Registered {
  userKey: Uint8Array;
  secret: Uint8Array;
  pubkey: string;
  walletPubkey: string;
}

/**
 * Registers a connection (a new user unless `userKey` is given), as `deposit-bridge connect`
 * does; a 503 (no vault could open a deposit yet, e.g. right after a start) is retried.
 */
export async function registerConnection(bridgeUrl: string, userKey: Uint8Array = generateSecretKey()): Promise<Registered> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await registerOnce(bridgeUrl, userKey);
    } catch (error) {
      if (attempt >= 10 || !(error instanceof Error && error.message.includes(': 503 '))) throw error;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function registerOnce(bridgeUrl: string, userKey: Uint8Array): Promise<Registered> {
  const secret = generateSecretKey();
  const pubkey = getPublicKey(secret);
  const grant = signGrant(grantTerms(pubkey, BENCH_METHODS, { name: 'bench' }), userKey);
  const url = `${bridgeUrl}/api/connections`;
  const body = JSON.stringify({ grant, deposit_open: signDepositOpen(userKey) });
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userKey, url, 'POST', body) },
    body,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`registering a connection: ${response.status} ${text}`);
  const registered = JSON.parse(text) as { wallet_service_pubkey?: unknown };
  if (typeof registered.wallet_service_pubkey !== 'string') throw new Error(`registering a connection: no wallet_service_pubkey in ${text}`);
  return { userKey, secret, pubkey, walletPubkey: registered.wallet_service_pubkey };
}

/**
 * Writes `count` more connections of an existing user straight into the database, as many users
 * would have registered them (already announced, so no info-event backlog), in batches.
 */
export async function insertConnections(db: Db, count: number, batch = 2_000): Promise<void> {
  const template = await db.selectFrom('connections').select(['user_pubkey', 'grant_event']).executeTakeFirstOrThrow();
  for (let done = 0; done < count; done += batch) {
    const n = Math.min(batch, count - done);
    await db
      .insertInto('connections')
      .values(
        Array.from({ length: n }, () => ({
          pubkey: randomBytes(32).toString('hex'),
          user_pubkey: template.user_pubkey,
          name: 'bulk',
          grant_event: JSON.stringify(template.grant_event),
          grant_created_at: 1,
          methods: JSON.stringify(['get_info', 'get_balance']),
          budget_msat: null,
          budget_renewal: null,
          max_amount_msat: null,
          fee_base_msat: 10_000n,
          fee_ppm: 10_000,
          expires_at: null,
          vault_operators: JSON.stringify(null),
          revoked: false,
          service_pubkey: randomBytes(32).toString('hex'),
          info_published_at: new Date(),
        })),
      )
      .execute();
  }
}
