import { getPublicKey } from 'nostr-tools/pure';
import { z } from 'zod';
import type { Db } from '../db/database.ts';
import { policyToJson, userPolicy } from '../deposits/policy.ts';
import { findAddressOfUser } from '../lnurl/addresses.ts';
import { nostrEventSchema, type NostrEvent } from '../protocol/nostr-event.ts';
import { decryptContent, encryptContent, sharedKey } from '../protocol/nwc-encryption.ts';

/**
 * A user's settings at the bridge, as a backup holds them (version 1): every connection still in
 * force (the grants the user signed: the bridge keeps no connection secret, so the apps' NWC
 * URIs keep working once the grants are registered again under the same master key), the
 * emergency lock statement, the allocation policy and the lightning address. Money is not in
 * it: the vaults hold that.
 */
export const settingsSchema = z.strictObject({
  version: z.literal(1),
  user: z.string().regex(/^[0-9a-f]{64}$/),
  exported_at: z.number().int().nonnegative(),
  grants: z.array(nostrEventSchema),
  lock: nostrEventSchema.nullable(),
  /** As `GET /api/policy` shows it (amounts as decimal strings); checked again when imported. */
  policy: z
    .strictObject({ max_share_ppm: z.number(), test_amount_msat: z.string(), trusted_score: z.number(), min_score: z.number(), exponent: z.number() })
    .nullable(),
  lightning_address: z.string().nullable(),
});
export type Settings = z.output<typeof settingsSchema>;

/** The file: a versioned envelope around the settings, NIP-44 encrypted to the user's own key. */
export const backupFileSchema = z.strictObject({
  type: z.literal('deposit-bridge-settings'),
  version: z.literal(1),
  user: z.string().regex(/^[0-9a-f]{64}$/),
  created_at: z.number().int().nonnegative(),
  encryption: z.literal('nip44_v2'),
  ciphertext: z.string().min(1),
});
export type BackupFile = z.output<typeof backupFileSchema>;

/** Reads a user's settings from the bridge's database. */
export async function exportSettings(db: Db, userPubkey: string, nowSec: number): Promise<Settings> {
  const connections = await db
    .selectFrom('connections')
    .select(['grant_event'])
    .where('user_pubkey', '=', userPubkey)
    .where('revoked', '=', false)
    .orderBy('grant_created_at')
    .execute();
  const user = await db.selectFrom('users').select(['lock_event']).where('pubkey', '=', userPubkey).executeTakeFirst();
  const address = await findAddressOfUser(db, userPubkey);
  const hasPolicy = await db.selectFrom('allocation_policies').select('user_pubkey').where('user_pubkey', '=', userPubkey).executeTakeFirst();
  return {
    version: 1,
    user: userPubkey,
    exported_at: nowSec,
    grants: connections.map((c): NostrEvent => c.grant_event),
    lock: user?.lock_event ?? null,
    // Only a policy the user set: the defaults may improve in a later version.
    policy: hasPolicy ? policyToJson(await userPolicy(db, userPubkey)) : null,
    lightning_address: address?.name ?? null,
  };
}

/** Encrypts settings to the user's own key (NIP-44 with the conversation key of the key with itself). */
export function sealSettings(settings: Settings, userSecret: Uint8Array, nowSec: number): BackupFile {
  const user = getPublicKey(userSecret);
  if (settings.user !== user) throw new Error('these settings belong to another user key');
  const key = sharedKey('nip44_v2', userSecret, user);
  return { type: 'deposit-bridge-settings', version: 1, user, created_at: nowSec, encryption: 'nip44_v2', ciphertext: encryptContent('nip44_v2', key, JSON.stringify(settings)) };
}

/**
 * Opens a backup file's text with the user's key. Errors name what is wrong: not a backup, an
 * unsupported version, another user's backup, or a ciphertext that does not decrypt (tampered,
 * or another key).
 */
export function openSettings(text: string, userSecret: Uint8Array): Settings {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('not a settings backup: not JSON');
  }
  const header = z.object({ type: z.literal('deposit-bridge-settings'), version: z.number() }).safeParse(json);
  if (!header.success) throw new Error('not a deposit-bridge settings backup');
  if (header.data.version !== 1) throw new Error(`settings backup version ${header.data.version} is not supported (this bridge reads version 1)`);
  const file = backupFileSchema.safeParse(json);
  if (!file.success) throw new Error(`malformed settings backup: ${file.error.issues[0]?.path.join('.') ?? ''}`);
  const user = getPublicKey(userSecret);
  if (file.data.user !== user) throw new Error('this backup belongs to another user key');
  let plaintext: string;
  try {
    plaintext = decryptContent('nip44_v2', sharedKey('nip44_v2', userSecret, user), file.data.ciphertext);
  } catch {
    throw new Error('the backup does not decrypt with this key (changed or damaged)');
  }
  const settings = settingsSchema.safeParse(JSON.parse(plaintext));
  if (!settings.success) throw new Error(`malformed settings inside the backup: ${settings.error.issues[0]?.path.join('.') ?? ''}`);
  if (settings.data.user !== user) throw new Error('this backup belongs to another user key');
  return settings.data;
}
