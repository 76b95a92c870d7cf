import type { Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import type { Db } from '../db/database.ts';
import type { ConnectionRow } from '../db/schema.ts';
import { budgetRenewalSchema } from '../protocol/budget.ts';
import { grantInForce, parseGrant, type Grant } from '../protocol/grant.ts';
import { Nip47Error } from '../protocol/nip47-error.ts';
import { verifyDepositOpen } from '../protocol/user-statements.ts';
import { ApiRefusal } from './api-refusal.ts';
import type { VaultDeposit } from '../protocol/vault-api.ts';
import type { Trx } from './journal.ts';
import type { KnownOperator, OperatorDirectory } from './operators.ts';

/** A registered connection: the app key and the grant its user signed for it. */
export interface Connection {
  pubkey: string;
  userPubkey: string;
  /** The wallet service key this connection talks to, or null for the bridge-wide key. */
  servicePubkey: string | null;
  name: string;
  grant: Grant;
  grantEvent: Event;
}

export function connectionFromRow(row: ConnectionRow): Connection {
  return {
    pubkey: row.pubkey,
    userPubkey: row.user_pubkey,
    servicePubkey: row.service_pubkey,
    name: row.name,
    grantEvent: row.grant_event,
    grant: {
      userPubkey: row.user_pubkey,
      connectionPubkey: row.pubkey,
      name: row.name,
      methods: row.methods,
      budget: row.budget_msat === null || row.budget_renewal === null ? null : { amountMsat: row.budget_msat, renewal: budgetRenewalSchema.parse(row.budget_renewal) },
      maxAmountMsat: row.max_amount_msat,
      feeLimit: { baseMsat: row.fee_base_msat, ppm: row.fee_ppm },
      expiresAt: row.expires_at === null ? null : Number(row.expires_at),
      vaultOperators: row.vault_operators,
      velocity:
        row.velocity_payments_per_hour === null && row.velocity_amount_msat_per_hour === null
          ? null
          : { paymentsPerHour: row.velocity_payments_per_hour, amountMsatPerHour: row.velocity_amount_msat_per_hour },
      revoked: row.revoked,
      createdAt: Number(row.grant_created_at),
    },
  };
}

/**
 * The connection changed (its user signed a newer grant, or revoked it) since it was read: what
 * was decided on the old grant is dropped, and the request is answered again on the new one.
 */
export class StaleConnection extends Error {
  constructor(pubkey: string) {
    super(`connection ${pubkey} has a newer grant than the one read`);
    this.name = 'StaleConnection';
  }
}

export async function findConnection(db: Db, pubkey: string): Promise<Connection | undefined> {
  const row = await db.selectFrom('connections').selectAll().where('pubkey', '=', pubkey).executeTakeFirst();
  return row ? connectionFromRow(row) : undefined;
}

export interface Registration {
  /** The NIP-98 signer of the registration: must be the user who signed the grant. */
  authPubkey: string;
  grantEvent: Event;
  depositOpenEvent: Event;
  /** The wallet service key a new connection gets (derived by the NWC layer). */
  servicePubkeyFor: (connectionPubkey: string) => string;
}

/** Capabilities a grant may list besides the NIP-47 methods. */
export const GRANTABLE_CAPABILITIES = ['notifications'] as const;

/**
 * Permissions a grant may list for the bridge itself, not advertised to apps: `rebalance` lets
 * the bridge move money between the user's own deposits (docs/multi-vault.md).
 */
export const BRIDGE_PERMISSIONS = ['rebalance'] as const;

/**
 * Registers (or updates) a connection: checks the user's signatures, records the user, opens
 * the user's deposits at every operator that has none yet, pushes the grant to each deposit,
 * and stores the grant. The bridge never sees the connection's secret.
 */
export async function registerConnection(
  db: Db,
  operators: OperatorDirectory,
  servedMethods: readonly string[],
  registration: Registration,
  logger: Logger,
): Promise<{ connection: Connection; depositCount: number }> {
  const parsed = parseGrant(registration.grantEvent);
  if (!parsed.ok) throw new ApiRefusal('BAD_REQUEST', parsed.error.message);
  const grant = parsed.value;
  if (grant.userPubkey !== registration.authPubkey) throw new ApiRefusal('FORBIDDEN', 'the grant must be signed by the key that signs the request');
  const inForce = grantInForce(grant, Math.floor(Date.now() / 1000));
  // A revocation is a grant too: not in force, but the newest word on an existing connection.
  const revocation = grant.revoked && inForce.ok === false && inForce.error.code === 'UNAUTHORIZED';
  if (!inForce.ok && !revocation) throw new ApiRefusal('BAD_REQUEST', inForce.error.message);
  const grantable: readonly string[] = [...GRANTABLE_CAPABILITIES, ...BRIDGE_PERMISSIONS];
  const unknown = grant.methods.filter((m) => !servedMethods.includes(m) && !grantable.includes(m));
  if (unknown.length > 0) throw new ApiRefusal('BAD_REQUEST', `methods not served by this bridge: ${unknown.join(', ')}`);
  const owner = verifyDepositOpen(registration.depositOpenEvent);
  if (!owner.ok) throw new ApiRefusal('BAD_REQUEST', owner.error.message);
  if (owner.value !== grant.userPubkey) throw new ApiRefusal('FORBIDDEN', 'the deposit-open statement must be signed by the user');

  const existing = await db.selectFrom('connections').select(['user_pubkey', 'grant_created_at']).where('pubkey', '=', grant.connectionPubkey).executeTakeFirst();
  if (existing && existing.user_pubkey !== grant.userPubkey) throw new ApiRefusal('CONFLICT', 'this connection key belongs to another user');
  if (existing && existing.grant_created_at >= BigInt(grant.createdAt)) {
    throw new ApiRefusal('CONFLICT', 'a newer or equal grant for this connection is already registered');
  }
  if (revocation && !existing) throw new ApiRefusal('NOT_FOUND', 'no such connection to revoke');
  // The bridge keeps a sweep connection's secret only because its grant names one destination
  // (docs/sweep.md): a newer grant without one (say, limits edited in a page that drops it) would
  // let that secret pay anywhere, so it is refused; revoking is always allowed.
  if (!grant.revoked && grant.destination === undefined) {
    const sweep = await db.selectFrom('sweep_policies').select('user_pubkey').where('connection_pubkey', '=', grant.connectionPubkey).executeTakeFirst();
    if (sweep) throw new ApiRefusal('BAD_REQUEST', 'this is the sweep connection: its grant must keep naming its destination (change it with `deposit-bridge sweep`)');
  }

  await db
    .insertInto('users')
    .values({ pubkey: grant.userPubkey, deposit_open_event: JSON.stringify(registration.depositOpenEvent) })
    .onConflict((oc) => oc.column('pubkey').doNothing())
    .execute();
  const depositCount = await ensureDeposits(db, operators.all(), grant.userPubkey, registration.depositOpenEvent, logger);
  if (depositCount === 0) throw new ApiRefusal('UNAVAILABLE', 'no vault operator could open a deposit; try again later');

  const columns = {
    user_pubkey: grant.userPubkey,
    name: grant.name,
    grant_event: JSON.stringify(registration.grantEvent),
    grant_created_at: grant.createdAt,
    methods: JSON.stringify(grant.methods),
    budget_msat: grant.budget?.amountMsat ?? null,
    budget_renewal: grant.budget?.renewal ?? null,
    max_amount_msat: grant.maxAmountMsat,
    fee_base_msat: grant.feeLimit.baseMsat,
    fee_ppm: grant.feeLimit.ppm,
    expires_at: grant.expiresAt,
    vault_operators: JSON.stringify(grant.vaultOperators),
    velocity_payments_per_hour: grant.velocity?.paymentsPerHour ?? null,
    velocity_amount_msat_per_hour: grant.velocity?.amountMsatPerHour ?? null,
    revoked: grant.revoked,
  };
  // The conditional upsert keeps the newest grant even if two registrations race.
  const stored = await db
    .insertInto('connections')
    .values({ pubkey: grant.connectionPubkey, service_pubkey: registration.servicePubkeyFor(grant.connectionPubkey), ...columns })
    .onConflict((oc) =>
      oc
        .column('pubkey')
        .doUpdateSet({ ...columns, updated_at: new Date() })
        .where('connections.grant_created_at', '<', BigInt(grant.createdAt))
        .where('connections.user_pubkey', '=', grant.userPubkey),
    )
    .returningAll()
    .executeTakeFirst();
  if (!stored) throw new ApiRefusal('CONFLICT', 'a newer grant for this connection is already registered');

  await pushGrant(db, operators, grant.userPubkey, registration.grantEvent, logger);
  return { connection: connectionFromRow(stored), depositCount };
}

/** Opens the user's deposit at each operator where there is none yet; returns how many the user has. */
export async function ensureDeposits(db: Db, operators: readonly KnownOperator[], userPubkey: string, openEvent: Event, logger: Logger): Promise<number> {
  const have = new Set(
    (await db.selectFrom('deposits').select('operator_pubkey').where('user_pubkey', '=', userPubkey).execute()).map((r) => r.operator_pubkey),
  );
  await Promise.all(
    operators
      .filter((op) => !have.has(op.nodePubkey))
      .map(async (op) => {
        try {
          const deposit = await op.client.openDeposit(openEvent);
          if (deposit.owner !== userPubkey) throw new Error('operator opened a deposit for another owner');
          await insertDepositRow(db, userPubkey, op.nodePubkey, deposit);
          have.add(op.nodePubkey);
        } catch (error) {
          logger.warn({ operator: op.name, err: error }, 'could not open a deposit');
        }
      }),
  );
  return have.size;
}

async function pushGrant(db: Db, operators: OperatorDirectory, userPubkey: string, grantEvent: Event, logger: Logger): Promise<void> {
  const deposits = await db.selectFrom('deposits').select(['operator_pubkey', 'remote_deposit_id']).where('user_pubkey', '=', userPubkey).execute();
  await Promise.all(
    deposits.map(async (d) => {
      const op = operators.get(d.operator_pubkey);
      if (!op) return;
      try {
        await op.client.pushGrant(d.remote_deposit_id, grantEvent);
      } catch (error) {
        // Payments carry the grant anyway; the push only lets the operator refuse older ones early.
        logger.warn({ operator: op.name, err: error }, 'could not push the grant to a vault');
      }
    }),
  );
}

/** Refuses a method the connection's grant does not allow, or a grant no longer in force. */
export function requireGrantedMethod(connection: Connection, method: string, nowSec: number): void {
  const inForce = grantInForce(connection.grant, nowSec);
  if (!inForce.ok) throw new Nip47Error(inForce.error.code === 'EXPIRED' ? 'EXPIRED' : 'UNAUTHORIZED', inForce.error.message);
  if (!connection.grant.methods.includes(method)) throw new Nip47Error('RESTRICTED', `this connection is not allowed to call ${method}`);
}

/**
 * Records the user's deposit at an operator with no money yet; the id of the new row, or
 * undefined when the user already has a deposit there.
 */
export async function insertDepositRow(trx: Trx, userPubkey: string, operatorPubkey: string, deposit: VaultDeposit): Promise<bigint | undefined> {
  const inserted = await trx
    .insertInto('deposits')
    .values({
      user_pubkey: userPubkey,
      operator_pubkey: operatorPubkey,
      remote_deposit_id: deposit.deposit_id,
      vault_id: deposit.vault_id,
      channel_id: deposit.channel_id,
      multisig_pubkey: deposit.multisig_pubkey,
      confirmed_msat: 0n,
      reserved_msat: 0n,
      vault_balance_msat: null,
      vault_balance_seq: null,
    })
    .onConflict((oc) => oc.columns(['user_pubkey', 'operator_pubkey']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted?.id;
}
