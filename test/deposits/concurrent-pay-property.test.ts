import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { feeLimitFor } from '../../src/protocol/amounts.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, type World } from '../helpers/world.ts';

const SAT = 1000n;

interface DepositState {
  id: bigint;
  operator: string;
  remoteId: string;
  confirmed: bigint;
  reserved: bigint;
}

/**
 * Random batches of concurrent pay_invoice requests against one funded user on a full devnet
 * (real relay, real vault operators over HTTP, PostgreSQL). After every batch the bridge's
 * cache, its journal and the vaults' own books must agree, and nothing may be overdrawn.
 */
describe('concurrent pay_invoice batches on PostgreSQL', () => {
  let world: World;
  /** Three apps of the same user: admissions of one connection queue on its row, those of different ones do not. */
  let clients: RawNwcClient[];
  let user: string;
  let feeLimit: { baseMsat: bigint; ppm: number };

  beforeAll(async () => {
    world = await startWorld('postgres');
    const first = await connectRaw(world, 'nip44_v2');
    const others = await Promise.all([0, 1].map(() => connectRaw(world, 'nip44_v2', ['--user-key', first.userKey!])));
    clients = [first.client, ...others.map((o) => o.client)];
    const connections = await world.bridge.wallet.db
      .selectFrom('connections')
      .selectAll()
      .where(
        'pubkey',
        'in',
        clients.map((c) => c.pubkey),
      )
      .execute();
    expect(new Set(connections.map((c) => c.user_pubkey)).size).toBe(1);
    user = connections[0]!.user_pubkey;
    feeLimit = { baseMsat: connections[0]!.fee_base_msat, ppm: connections[0]!.fee_ppm };
    for (const c of connections) expect({ baseMsat: c.fee_base_msat, ppm: c.fee_ppm }).toEqual(feeLimit);
    // Three fundings: equal-scored operators take turns (the lighter deposit receives), so the
    // money starts spread over several vaults.
    for (let i = 0; i < 3; i++) await fund(world, clients[0]!, 40_000_000);
  });

  afterAll(async () => {
    for (const c of clients ?? []) c.close();
    await world?.stop();
  });

  async function deposits(): Promise<DepositState[]> {
    const rows = await world.bridge.wallet.db
      .selectFrom('deposits')
      .select(['id', 'operator_pubkey', 'remote_deposit_id', 'confirmed_msat', 'reserved_msat'])
      .where('user_pubkey', '=', user)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, operator: r.operator_pubkey, remoteId: r.remote_deposit_id, confirmed: r.confirmed_msat, reserved: r.reserved_msat }));
  }

  async function checkBooksAgree(): Promise<DepositState[]> {
    const now = await deposits();
    const journal = await world.bridge.wallet.db
      .selectFrom('journal_entries')
      .select(['deposit_id', sql<bigint>`sum(confirmed_delta_msat)::bigint`.as('confirmed'), sql<bigint>`sum(reserved_delta_msat)::bigint`.as('reserved')])
      .where(
        'deposit_id',
        'in',
        now.map((d) => d.id),
      )
      .groupBy('deposit_id')
      .execute();
    const journalOf = new Map(journal.map((j) => [j.deposit_id, j]));
    let cached = 0n;
    let journaled = 0n;
    let atVaults = 0n;
    for (const d of now) {
      expect(d.reserved, 'nothing stays reserved once every payment is final').toBe(0n);
      expect(d.confirmed >= d.reserved && d.reserved >= 0n).toBe(true);
      const j = journalOf.get(d.id) ?? { confirmed: 0n, reserved: 0n };
      expect({ confirmed: j.confirmed, reserved: j.reserved }).toEqual({ confirmed: d.confirmed, reserved: d.reserved });
      const vault = await world.bridge.wallet.operators.get(d.operator)!.client.depositStatus(d.remoteId);
      expect({ balance: vault.balance_msat, reserved: vault.reserved_msat }, `vault ${d.operator.slice(0, 8)} agrees with the bridge`).toEqual({
        balance: d.confirmed,
        reserved: 0n,
      });
      cached += d.confirmed;
      journaled += j.confirmed;
      atVaults += vault.balance_msat;
    }
    expect(journaled).toBe(cached);
    expect(atVaults).toBe(cached);
    return now;
  }

  it('never overdraws, refuses only with INSUFFICIENT_BALANCE, and keeps bridge, journal and vaults in agreement', async () => {
    const batch = fc.record({
      topUpsSat: fc.array(fc.integer({ min: 10_000, max: 60_000 }), { maxLength: 2 }),
      payments: fc.array(fc.record({ sat: fc.integer({ min: 1_000, max: 30_000 }), app: fc.nat({ max: 2 }) }), { minLength: 5, maxLength: 15 }),
    });
    let refusedTotal = 0;
    let paidTotal = 0;

    await fc.assert(
      fc.asyncProperty(batch, async ({ topUpsSat, payments }) => {
        for (const sat of topUpsSat) await fund(world, clients[0]!, sat * 1000);
        const paymentsSat = payments.map((p) => p.sat);
        const before = await checkBooksAgree();
        const largest = before.reduce((max, d) => (d.confirmed - d.reserved > max ? d.confirmed - d.reserved : max), 0n);
        const available = before.reduce((sum, d) => sum + d.confirmed - d.reserved, 0n);

        const invoices = await Promise.all(paymentsSat.map((sat) => world.devnet.createPayeeInvoice(BigInt(sat) * SAT)));
        // While the batch is in flight, every snapshot of the deposits must be within bounds too.
        let inFlight = true;
        const snapshots: DepositState[][] = [];
        const sampler = (async () => {
          while (inFlight) {
            snapshots.push(await deposits());
            await new Promise((r) => setTimeout(r, 10));
          }
        })();
        const responses = await Promise.all(invoices.map(({ invoice }, i) => clients[payments[i]!.app]!.request('pay_invoice', { invoice })));
        inFlight = false;
        await sampler;
        for (const d of snapshots.flat()) expect(d.confirmed >= d.reserved && d.reserved >= 0n, `deposit ${d.id} in flight`).toBe(true);
        expect(snapshots.length).toBeGreaterThan(0);

        const needs = paymentsSat.map((sat) => BigInt(sat) * SAT + feeLimitFor(BigInt(sat) * SAT, feeLimit));
        let spent = 0n;
        responses.forEach((response, i) => {
          if (response.error === null) {
            expect(response.result.preimage).toMatch(/^[0-9a-f]{64}$/);
            spent += BigInt(paymentsSat[i]!) * SAT + BigInt(response.result.fees_paid as number);
            expect(BigInt(response.result.fees_paid as number) <= needs[i]! - BigInt(paymentsSat[i]!) * SAT).toBe(true);
          } else {
            expect(response.error.code, response.error.message).toBe('INSUFFICIENT_BALANCE');
          }
          // Balances only fall during a batch, so a payment all deposits together did not cover
          // before it must be refused (one larger than any single deposit may be split across them).
          if (needs[i]! > available) expect(response.error?.code).toBe('INSUFFICIENT_BALANCE');
        });
        // And when one deposit covered all of them together, none may be refused.
        if (needs.reduce((a, b) => a + b, 0n) <= largest) expect(responses.map((r) => r.error)).toEqual(responses.map(() => null));

        const paid = responses.filter((r) => r.error === null).length;
        paidTotal += paid;
        refusedTotal += responses.length - paid;
        const statuses = invoices.map(({ paymentHash }) => world.devnet.payeeInvoiceStatus(paymentHash)?.state ?? 'unknown');
        expect(statuses.filter((s) => s === 'settled')).toHaveLength(paid);
        const paidHashes = invoices.filter((_, i) => responses[i]!.error === null).map((inv) => inv.paymentHash).sort();
        expect(invoices.filter((_, i) => statuses[i] === 'settled').map((inv) => inv.paymentHash).sort()).toEqual(paidHashes);

        const pending = await world.bridge.wallet.db.selectFrom('transactions').select('id').where('user_pubkey', '=', user).where('state', '=', 'pending').where('type', '=', 'outgoing').execute();
        expect(pending).toEqual([]);

        const after = await checkBooksAgree();
        const total = (ds: DepositState[]) => ds.reduce((sum, d) => sum + d.confirmed, 0n);
        expect(total(before) - total(after)).toBe(spent);
      }),
      { numRuns: 8, endOnFailure: true },
    );
    // The runs must have exercised both outcomes, or the property proved little.
    expect(paidTotal).toBeGreaterThan(0);
    expect(refusedTotal).toBeGreaterThan(0);
  }, 120_000);
});
