import type { Db } from '../db/database.ts';
import { storableText } from '../protocol/storable.ts';
import type { Trx } from './journal.ts';

export interface AuditEntry {
  userPubkey: string;
  connectionPubkey?: string | null | undefined;
  requestEventId?: string | null | undefined;
  method?: string | null | undefined;
  code: string;
  message: string;
}

/** Records a refused request (or an incident the user should know of) in the user's audit log. */
export async function recordAudit(db: Trx, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      user_pubkey: entry.userPubkey,
      connection_pubkey: entry.connectionPubkey ?? null,
      request_event_id: entry.requestEventId ?? null,
      // A method name is whatever the app sent: keep it readable, and storable.
      method: entry.method == null ? null : storableText(entry.method).slice(0, 64),
      code: entry.code,
      message: storableText(entry.message).slice(0, 500),
    })
    .execute();
}

/** The user's audit log, newest first, `limit` entries before id `before`. */
export async function listAudit(db: Db, userPubkey: string, options: { limit: number; before?: bigint | undefined }) {
  let q = db.selectFrom('audit_log').selectAll().where('user_pubkey', '=', userPubkey);
  if (options.before !== undefined) q = q.where('id', '<', options.before);
  return q.orderBy('id', 'desc').limit(options.limit).execute();
}
