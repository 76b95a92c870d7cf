import { randomBytes } from 'node:crypto';
import type { Db } from '../../src/db/database.ts';
import type { NewTransaction } from '../../src/db/schema.ts';

/** 32 random bytes as hex: a stand-in pubkey, hash or id. */
export function randomHex32(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Inserts a user row directly (no signature checks: these tests are about money rows, not
 * registration) and returns its pubkey.
 */
export async function insertUser(db: Db, pubkey = randomHex32()): Promise<string> {
  await db.insertInto('users').values({ pubkey, deposit_open_event: JSON.stringify({ stand_in: true }) }).execute();
  return pubkey;
}

/** Inserts a vault operator row and returns its node pubkey. */
export async function insertOperator(db: Db, name = 'op', nodePubkey = randomHex32()): Promise<string> {
  await db
    .insertInto('vault_operators')
    .values({
      node_pubkey: nodePubkey,
      name,
      url: `http://127.0.0.1:1/${name}`,
      peer_node_pubkey: randomHex32(),
      network: 'regtest',
      info: JSON.stringify({}),
      score: 0.5,
      score_reasons: JSON.stringify([]),
      events_cursor: 0n,
      available: true,
      last_seen_at: null,
    })
    .execute();
  return nodePubkey;
}

/** Inserts a connection row of `user` directly (a stand-in grant event, no limits) with the grant time and methods given. */
export async function insertConnection(db: Db, user: string, pubkey: string, grant: { createdAt?: number; methods?: string[] } = {}): Promise<void> {
  await db
    .insertInto('connections')
    .values({
      pubkey,
      user_pubkey: user,
      name: 'stand-in',
      grant_event: JSON.stringify({ stand_in: true }),
      grant_created_at: grant.createdAt ?? 1,
      methods: JSON.stringify(grant.methods ?? ['pay_invoice']),
      budget_msat: null,
      budget_renewal: null,
      max_amount_msat: null,
      fee_base_msat: 0n,
      fee_ppm: 0,
      expires_at: null,
      vault_operators: JSON.stringify(null),
      revoked: false,
    })
    .execute();
}

/** Inserts a deposit of `user` at `operator` with the given balances and returns its id. */
export async function insertDeposit(db: Db, user: string, operator: string, balances: { confirmedMsat?: bigint; reservedMsat?: bigint } = {}): Promise<bigint> {
  const row = await db
    .insertInto('deposits')
    .values({
      user_pubkey: user,
      operator_pubkey: operator,
      remote_deposit_id: randomHex32(),
      vault_id: randomHex32(),
      channel_id: randomHex32(),
      multisig_pubkey: randomHex32(),
      confirmed_msat: balances.confirmedMsat ?? 0n,
      reserved_msat: balances.reservedMsat ?? 0n,
      vault_balance_msat: null,
      vault_balance_seq: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A transaction row with harmless defaults, for inserting directly. */
export function transactionRow(user: string, depositId: bigint, fields: Partial<NewTransaction> = {}): NewTransaction {
  return {
    user_pubkey: user,
    deposit_id: depositId,
    connection_pubkey: null,
    type: 'incoming',
    state: 'settled',
    step: 'final',
    payment_hash: randomHex32(),
    invoice: `lnbcrt1${randomBytes(8).toString('hex')}`,
    description: null,
    description_hash: null,
    preimage: null,
    amount_msat: 1_000n,
    fee_msat: 0n,
    fee_reserve_msat: 0n,
    request_event_id: null,
    idempotency_key: null,
    failure_reason: null,
    metadata: JSON.stringify(null),
    created_at: 1_000,
    expires_at: null,
    settled_at: null,
    ...fields,
  };
}
