import type { Db } from '../db/database.ts';
import { fail, ok, type Result } from '../protocol/result.ts';
import { checkAddressName } from './names.ts';

export interface LightningAddress {
  name: string;
  userPubkey: string;
}

/** The address with this name (looked up lowercased, as LUD-16 names are), or undefined. */
export async function findAddressByName(db: Db, name: string): Promise<LightningAddress | undefined> {
  const row = await db.selectFrom('lightning_addresses').select(['name', 'user_pubkey']).where('name', '=', name.toLowerCase()).executeTakeFirst();
  return row ? { name: row.name, userPubkey: row.user_pubkey } : undefined;
}

/** The user's address, or undefined. */
export async function findAddressOfUser(db: Db, userPubkey: string): Promise<LightningAddress | undefined> {
  const row = await db.selectFrom('lightning_addresses').select(['name', 'user_pubkey']).where('user_pubkey', '=', userPubkey).executeTakeFirst();
  return row ? { name: row.name, userPubkey: row.user_pubkey } : undefined;
}

/**
 * Gives the user the address `name`, replacing the one they had (a user has one; the old name
 * is free again). Errors: BAD_REQUEST for a name that is not allowed, NOT_FOUND for a key that
 * is not a user yet (no deposits to receive into), CONFLICT when another user holds the name.
 */
export async function setAddress(db: Db, userPubkey: string, requested: string): Promise<Result<LightningAddress>> {
  const checked = checkAddressName(requested);
  if (!checked.ok) return checked;
  const name = checked.value;
  const user = await db.selectFrom('users').select('pubkey').where('pubkey', '=', userPubkey).executeTakeFirst();
  if (!user) return fail('NOT_FOUND', 'this key has no deposits here yet: create a connection first (deposit-bridge connect)');
  try {
    await db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('lightning_addresses').select('name').where('user_pubkey', '=', userPubkey).forUpdate().executeTakeFirst();
      if (current?.name === name) return;
      if (current) await trx.deleteFrom('lightning_addresses').where('user_pubkey', '=', userPubkey).execute();
      // A name another user holds (or is taking at this moment) inserts nothing; neither does a
      // second change of this user's name racing this one.
      const inserted = await trx.insertInto('lightning_addresses').values({ name, user_pubkey: userPubkey }).onConflict((oc) => oc.doNothing()).returning('name').executeTakeFirst();
      if (!inserted) throw new NameTaken();
    });
  } catch (error) {
    if (error instanceof NameTaken) return fail('CONFLICT', `the name "${name}" is taken`);
    throw error;
  }
  return ok({ name, userPubkey });
}

/** Frees the user's address; false when they had none. */
export async function removeAddress(db: Db, userPubkey: string): Promise<boolean> {
  const removed = await db.deleteFrom('lightning_addresses').where('user_pubkey', '=', userPubkey).executeTakeFirst();
  return removed.numDeletedRows > 0n;
}

/** Rolls back the replacement of a user's name when the new one is taken. */
class NameTaken extends Error {}
