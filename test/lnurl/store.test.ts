/**
 * The lightning address and zap receipt rows on both databases: names taken once under races,
 * and receipts published once a zap invoice settles, retried when no relay takes them, never
 * for an unpaid or uncredited invoice, and once across two instances.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent, type Event } from 'nostr-tools/pure';
import type { Db } from '../../src/db/database.ts';
import { findAddressByName, findAddressOfUser, removeAddress, setAddress } from '../../src/lnurl/addresses.ts';
import { ZapReceiptPublisher, type PublishToRelay } from '../../src/lnurl/zap-receipts.ts';
import { silentLogger } from '../../src/log.ts';
import { BACKENDS, openTestDatabase } from '../helpers/database.ts';
import { insertDeposit, insertOperator, insertUser, randomHex32, transactionRow } from '../helpers/deposit-rows.ts';
import { waitFor } from '../helpers/world.ts';

describe.each(BACKENDS)('lightning address rows on %s', (backend) => {
  let db: Db;
  let close: () => Promise<void>;
  let deposit: bigint;
  let user: string;
  const zapSecret = generateSecretKey();

  beforeAll(async () => {
    ({ db, close } = await openTestDatabase(backend));
    user = await insertUser(db);
    deposit = await insertDeposit(db, user, await insertOperator(db));
  });

  afterAll(async () => {
    await close?.();
  });

  it('gives a name to exactly one of ten users racing for it', async () => {
    const users = await Promise.all(Array.from({ length: 10 }, () => insertUser(db)));
    const outcomes = await Promise.all(users.map((u) => setAddress(db, u, 'satoshi')));
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok).map((o) => !o.ok && o.error.code)).toEqual(Array(9).fill('CONFLICT'));
    const holder = outcomes.findIndex((o) => o.ok);
    expect((await findAddressByName(db, 'satoshi'))?.userPubkey).toBe(users[holder]);
  });

  it('keeps one name per user: a new name frees the old one; removal frees it too', async () => {
    const u = await insertUser(db);
    expect(await setAddress(db, u, 'first')).toMatchObject({ ok: true });
    expect(await setAddress(db, u, 'second')).toMatchObject({ ok: true });
    expect(await findAddressByName(db, 'first')).toBeUndefined();
    expect((await findAddressOfUser(db, u))?.name).toBe('second');
    const other = await insertUser(db);
    expect(await setAddress(db, other, 'first')).toMatchObject({ ok: true });
    expect(await removeAddress(db, u)).toBe(true);
    expect(await removeAddress(db, u)).toBe(false);
    expect(await findAddressByName(db, 'second')).toBeUndefined();
  });

  it('refuses a key that is not a user, and a name the database would not hold', async () => {
    expect(await setAddress(db, randomHex32(), 'nobody')).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await setAddress(db, user, 'Bad Name')).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    // The check constraint stands behind the code's check.
    await expect(db.insertInto('lightning_addresses').values({ name: 'Bad Name', user_pubkey: user }).execute()).rejects.toThrow();
  });

  /** A settled (or otherwise) zap invoice with its request, as the callback stores it. */
  const zapInvoice = async (relays: string[], fields: { state?: 'settled' | 'pending'; failure_reason?: string } = {}) => {
    const request = finalizeEvent(
      { kind: 9734, created_at: 1_700_000_000, content: 'hi', tags: [['relays', ...relays], ['p', user], ['e', 'ab'.repeat(32)], ['amount', '21000']] },
      generateSecretKey(),
    );
    const preimage = randomHex32();
    const settled = (fields.state ?? 'settled') === 'settled';
    const tx = await db
      .insertInto('transactions')
      .values(
        transactionRow(user, deposit, {
          state: fields.state ?? 'settled',
          preimage: settled ? preimage : null,
          settled_at: settled ? 1_700_000_100 : null,
          amount_msat: 21_000n,
          failure_reason: fields.failure_reason ?? null,
        }),
      )
      .returning(['id', 'payment_hash', 'invoice'])
      .executeTakeFirstOrThrow();
    const raw = JSON.stringify(request);
    await db
      .insertInto('lnurl_invoices')
      .values({ transaction_id: tx.id, payment_hash: tx.payment_hash, address_name: 'satoshi', zap_request: raw, zap_relays: JSON.stringify(relays) })
      .execute();
    return { id: tx.id, raw, request, preimage, invoice: tx.invoice };
  };

  const row = (id: bigint) => db.selectFrom('lnurl_invoices').selectAll().where('transaction_id', '=', id).executeTakeFirstOrThrow();

  it('publishes the receipt of a settled zap to its relays; retries when none takes it; never for unpaid or uncredited ones', async () => {
    let refuse = true;
    const sent: { url: string; event: Event }[] = [];
    const publish: PublishToRelay = async (url, event) => {
      sent.push({ url, event });
      return refuse ? 'blocked: not today' : url.endsWith('down') ? 'connection refused' : null;
    };
    const zap = await zapInvoice(['wss://one.example', 'wss://down']);
    const unpaid = await zapInvoice(['wss://one.example'], { state: 'pending' });
    const uncredited = await zapInvoice(['wss://one.example'], { failure_reason: 'paid at the vault but not credited' });
    const publisher = new ZapReceiptPublisher(db, zapSecret, silentLogger, publish);
    try {
      publisher.poke();
      await waitFor(async () => (await row(zap.id)).zap_attempts === 1, 'first attempt');
      const failed = await row(zap.id);
      expect(failed.zap_published_at).toBeNull();
      expect(failed.zap_last_error).toMatch(/blocked: not today/);
      const receipt = failed.zap_receipt;
      if (!receipt) throw new Error('no receipt stored');
      expect(verifyEvent(receipt)).toBe(true);
      expect(receipt).toMatchObject({ kind: 9735, pubkey: getPublicKey(zapSecret), created_at: 1_700_000_100, content: '' });
      expect(receipt.tags).toEqual([
        ['p', user],
        ['e', 'ab'.repeat(32)],
        ['P', zap.request.pubkey],
        ['bolt11', zap.invoice],
        ['description', zap.raw],
        ['preimage', zap.preimage],
      ]);

      // Due again: this time one relay takes it, which is enough.
      refuse = false;
      await db.updateTable('lnurl_invoices').set({ zap_next_attempt_at: new Date(0) }).where('transaction_id', '=', zap.id).execute();
      publisher.poke();
      await waitFor(async () => (await row(zap.id)).zap_published_at !== null, 'published');
      const published = await row(zap.id);
      expect(published.zap_attempts).toBe(2);
      expect(published.zap_last_error).toMatch(/wss:\/\/down: connection refused/);
      // The very receipt built the first time was sent again.
      expect(new Set(sent.map((s) => s.event.id))).toEqual(new Set([receipt.id]));
      expect(sent.map((s) => s.url).sort()).toEqual(['wss://down', 'wss://down', 'wss://one.example', 'wss://one.example']);

      expect(await row(unpaid.id)).toMatchObject({ zap_receipt: null, zap_attempts: 0 });
      expect(await row(uncredited.id)).toMatchObject({ zap_receipt: null, zap_attempts: 0 });
    } finally {
      await publisher.stop();
    }
  });

  // Two instances need a shared server database: PostgreSQL only.
  if (backend === 'postgres') it('sends each receipt once when two instances look at the same time', async () => {
    const zaps = await Promise.all(Array.from({ length: 10 }, () => zapInvoice(['wss://one.example'])));
    const sent: string[] = [];
    const publish: PublishToRelay = async (_url, event) => {
      sent.push(event.id);
      return null;
    };
    const a = new ZapReceiptPublisher(db, zapSecret, silentLogger, publish);
    const b = new ZapReceiptPublisher(db, zapSecret, silentLogger, publish);
    try {
      a.poke();
      b.poke();
      await waitFor(async () => (await Promise.all(zaps.map((z) => row(z.id)))).every((r) => r.zap_published_at !== null), 'all published');
      a.poke();
      b.poke();
    } finally {
      await a.stop();
      await b.stop();
    }
    expect(sent).toHaveLength(10);
    expect(new Set(sent).size).toBe(10);
  });
});
