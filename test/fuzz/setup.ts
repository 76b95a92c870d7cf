/**
 * The people and connections the fuzz suites talk as: registered through the bridge's HTTP API
 * exactly as `deposit-bridge connect` does (grant and deposit-open signed by the user, NIP-98
 * signed by the user), so the bridge, its database and every vault know them.
 */
import { expect } from 'vitest';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { bytesToHex } from '@noble/hashes/utils.js';
import { grantTerms, signGrant, type GrantTerms } from '../../src/protocol/grant.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { waitFor } from '../helpers/world.ts';
import type { FuzzWorld as World } from './fuzz-world.ts';

export interface Registered {
  userSecret: Uint8Array;
  userPubkey: string;
  secret: Uint8Array;
  pubkey: string;
  /** The nostr+walletconnect URI a wallet would be given. */
  uri: string;
}

/** Registers a connection for `userSecret` (a new user when omitted) through POST /api/connections. */
export async function register(world: World, methods: string[], overrides: Partial<GrantTerms> = {}, userSecret: Uint8Array = generateSecretKey()): Promise<Registered> {
  const secret = generateSecretKey();
  const pubkey = getPublicKey(secret);
  const grant = signGrant(grantTerms(pubkey, methods, overrides), userSecret);
  const body = JSON.stringify({ grant, deposit_open: signDepositOpen(userSecret) });
  const url = `${world.bridge.url}/api/connections`;
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: httpAuthHeader(userSecret, url, 'POST', body) }, body });
  const answer = (await res.json()) as { wallet_service_pubkey: string; relays: string[] };
  expect(res.status, JSON.stringify(answer)).toBe(201);
  const uri = new URL(`nostr+walletconnect://${answer.wallet_service_pubkey}`);
  for (const relay of answer.relays) uri.searchParams.append('relay', relay);
  uri.searchParams.set('secret', bytesToHex(secret));
  return { userSecret, userPubkey: getPublicKey(userSecret), secret, pubkey, uri: uri.toString() };
}

export function rawClient(connection: Registered): RawNwcClient {
  return new RawNwcClient(connection.uri, 'nip44_v2');
}

/** What each vault says about every deposit the bridge holds: balance, reservation, lock. */
export async function vaultDeposits(world: World): Promise<Map<string, string>> {
  const rows = await world.bridge.wallet.db.selectFrom('deposits').innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey').select(['deposits.remote_deposit_id as id', 'vault_operators.url as url']).orderBy('deposits.id').execute();
  const out = new Map<string, string>();
  for (const row of rows) {
    const client = new HttpVaultClient({ url: row.url, secretKey: world.bridge.keys.vaultAuthSecret });
    const status = await client.depositStatus(row.id);
    out.set(`${row.url} ${row.id}`, `balance ${status.balance_msat} reserved ${status.reserved_msat} locked ${status.locked}`);
  }
  return out;
}

/** Each operator's money metrics (what auditors scrape). */
export async function vaultMetrics(world: World): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const op of world.devnet.operators) {
    const m = await new HttpVaultClient({ url: op.url, secretKey: generateSecretKey() }).metrics();
    out.set(op.url, `total ${m.total_balance_msat} settled payments ${m.payments_settled} settled invoices ${m.invoices_settled}`);
  }
  return out;
}

/** Funds a connection as a wallet user would: make_invoice, paid by the devnet's outside payer. */
export async function fund(world: World, connection: Registered, amountMsat: number): Promise<void> {
  const client = rawClient(connection);
  try {
    const balance = async () => (await client.request('get_balance')).result.balance as number;
    const before = await balance();
    const made = await client.request('make_invoice', { amount: amountMsat });
    expect(made.error).toBeNull();
    const paid = await world.devnet.payInvoice(made.result.invoice as string);
    expect(paid.state).toBe('settled');
    await waitFor(async () => (await balance()) === before + amountMsat, 'funding');
  } finally {
    client.close();
  }
}
