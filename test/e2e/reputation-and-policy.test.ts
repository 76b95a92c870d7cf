import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nip19 } from 'nostr-tools';
import type { AuditorSource } from '../../src/deposits/operators.ts';
import { httpAuthHeader } from '../../src/protocol/nip98.ts';
import { nowSeconds } from '../../src/protocol/nostr-event.ts';
import { AuditorClient } from '../../src/vault-client/auditor-client.ts';
import type { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { connectRaw, fund } from '../helpers/wallet.ts';
import { startWorld, waitFor, type World } from '../helpers/world.ts';

const SAT = 1_000;

describe('reputation from two auditors and the bridge, and the user’s spreading policy', () => {
  let world: World;
  let client: RawNwcClient;
  let userKey: Uint8Array;
  let auditors: AuditorSource[];

  /** A call to the bridge's HTTP API, NIP-98 signed by `key` (unsigned without one). */
  const api = async (method: string, path: string, body?: unknown, key: Uint8Array | null = userKey) => {
    const url = world.bridge.url + path;
    const text = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(url, {
      method,
      headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...(key ? { authorization: httpAuthHeader(key, url, method, text) } : {}) },
      ...(text !== undefined ? { body: text } : {}),
    });
    return { status: response.status, json: (await response.json()) as any };
  };

  const operatorOfInvoice = async (paymentHash: string) =>
    (
      await world.bridge.wallet.db
        .selectFrom('transactions')
        .innerJoin('deposits', 'deposits.id', 'transactions.deposit_id')
        .select('deposits.operator_pubkey')
        .where('transactions.payment_hash', '=', paymentHash)
        .executeTakeFirstOrThrow()
    ).operator_pubkey;

  beforeAll(async () => {
    world = await startWorld('pglite', { auditIntervalMs: 50, auditWindowMs: 300 });
    const connected = await connectRaw(world, 'nip44_v2');
    client = connected.client;
    const decoded = nip19.decode(connected.userKey!);
    if (decoded.type !== 'nsec') throw new Error('expected an nsec');
    userKey = decoded.data;
    auditors = world.devnet.auditors.map((a) => {
      const auditor = new AuditorClient(a);
      return { pubkey: a.pubkey, reports: async (operator, since) => (await auditor.reports(operator, since)).reports };
    });
  });

  afterAll(async () => {
    client?.close();
    await world?.stop();
  });

  it('keeps verified reports from both devnet auditors and scores with their agreement', async () => {
    expect(world.devnet.auditors).toHaveLength(2);
    const operators = world.bridge.wallet.operators;
    await waitFor(async () => {
      await operators.refreshScores(auditors, nowSeconds());
      const rows = await world.bridge.wallet.db.selectFrom('auditor_reports').select(['auditor_pubkey', 'operator_pubkey']).execute();
      return new Set(rows.map((r) => `${r.auditor_pubkey} ${r.operator_pubkey}`)).size === 2 * operators.all().length;
    }, 'a report from each auditor on each operator');

    for (const op of operators.all()) {
      const detail = op.scoreDetail!;
      expect(detail.auditors.map((a) => a.pubkey).sort()).toEqual(world.devnet.auditors.map((a) => a.pubkey).sort());
      expect(detail.confidence).toBe(0.75);
      expect(detail.hardFail).toBeNull();
      const metrics = detail.auditors.map((a) => a.metric);
      const combined = (metrics.reduce((s, m) => s + m, 0) / metrics.length + Math.min(...metrics)) / 2;
      expect(detail.combined).toBeCloseTo(combined, 12);
      const expected = (0.2 + 0.75 * (combined - 0.2)) * (detail.bridge?.factor ?? 1);
      expect(op.score).toBeCloseTo(expected, 12);
      // Healthy devnet operators score well above the new-operator prior.
      expect(op.score).toBeGreaterThan(0.5);
    }

    const listed = await api('GET', '/api/operators', undefined, null);
    expect(listed.status).toBe(200);
    for (const op of listed.json.operators) {
      expect(op.score_detail.auditors).toHaveLength(2);
      expect(op.score_reasons.join('\n')).toMatch(/2 auditor\(s\)/);
    }
  });

  it('forgets auditor reports older than 90 days', async () => {
    const op = world.bridge.wallet.operators.all()[0]!;
    const row = await world.bridge.wallet.db.selectFrom('auditor_reports').selectAll().where('operator_pubkey', '=', op.nodePubkey).executeTakeFirstOrThrow();
    const old = BigInt(nowSeconds() - 91 * 24 * 3600);
    await world.bridge.wallet.db
      .insertInto('auditor_reports')
      .values({ auditor_pubkey: row.auditor_pubkey, operator_pubkey: row.operator_pubkey, window_start: old - 300n, window_end: old, content: JSON.stringify(row.content), event: JSON.stringify(row.event) })
      .execute();
    await world.bridge.wallet.operators.refreshScores(auditors, nowSeconds());
    const left = await world.bridge.wallet.db.selectFrom('auditor_reports').select('id').where('window_end', '<=', old).execute();
    expect(left).toHaveLength(0);
  });

  it('records its own observations of every Vault API call', async () => {
    await fund(world, client, 50_000 * SAT);
    await world.bridge.wallet.operators.refreshScores(auditors, nowSeconds());
    const observed = await world.bridge.wallet.db.selectFrom('operator_observations').selectAll().execute();
    const calls = observed.reduce((s, o) => s + o.calls, 0);
    expect(calls).toBeGreaterThan(0);
    expect(observed.every((o) => o.failures === 0)).toBe(true);
  });

  it('lowers the score of an operator that stops answering the bridge, and says why', async () => {
    const operators = world.bridge.wallet.operators;
    const op = operators.all()[2]!;
    const before = op.score;
    for (let i = 0; i < 40; i++) operators.recordCall(op.url, { answered: false, latencyMs: 10_000 });
    await operators.refreshScores(auditors, nowSeconds());
    expect(op.score).toBeLessThan(before);
    expect(op.scoreReasons.join('\n')).toMatch(/unanswered/);
  });

  it('answers the default policy, refuses unsigned or malformed changes with a reason, and stores a valid one', async () => {
    const initial = await api('GET', '/api/policy');
    expect(initial).toEqual({ status: 200, json: { max_share_ppm: 400_000, test_amount_msat: '10000000', trusted_score: 0.3, min_score: 0.05, exponent: 2 } });

    const policy = { max_share_ppm: 500_000, test_amount_msat: '2000000', trusted_score: 0.4, min_score: 0.1, exponent: 1 };
    expect((await api('PUT', '/api/policy', policy, null)).status).toBe(401);
    const bad = await api('PUT', '/api/policy', { ...policy, max_share_ppm: 0 });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/max_share_ppm/);
    expect((await api('PUT', '/api/policy', { ...policy, test_amount_msat: 2_000_000 })).status).toBe(400);
    expect((await api('PUT', '/api/policy', { ...policy, extra: true })).status).toBe(400);

    expect(await api('PUT', '/api/policy', policy)).toEqual({ status: 200, json: policy });
    expect((await api('GET', '/api/policy')).json).toEqual(policy);
  });

  it('explains the allocation: targets that add up to the balance, caps and tiers', async () => {
    const balance = BigInt((await client.request('get_balance')).result.balance as number);
    const { status, json } = await api('GET', '/api/allocation');
    expect(status).toBe(200);
    expect(BigInt(json.total_msat)).toBe(balance);
    const targets = json.operators.map((o: any) => BigInt(o.target_msat));
    expect(targets.reduce((s: bigint, t: bigint) => s + t, 0n)).toBe(balance);
    expect(json.operators.map((o: any) => BigInt(o.balance_msat)).reduce((s: bigint, t: bigint) => s + t, 0n)).toBe(balance);
    for (const o of json.operators) {
      if (o.cap_msat !== null) expect(BigInt(o.target_msat) <= BigInt(o.cap_msat)).toBe(true);
      expect(o.tier).toBe(o.score >= json.policy.trusted_score ? 'trusted' : o.score >= json.policy.min_score ? 'test-amount' : 'below-floor');
      expect(o.score_reasons.length).toBeGreaterThan(0);
    }
    expect((await api('GET', '/api/allocation', undefined, null)).status).toBe(401);
  });

  it('receives only where the user’s policy allows', async () => {
    const operators = world.bridge.wallet.operators.all();
    const [best, second, third] = operators;
    best!.score = 0.9;
    second!.score = 0.85;
    third!.score = 0.8;
    // Only the best operator clears this floor: every invoice goes there, whatever the spread.
    await api('PUT', '/api/policy', { max_share_ppm: 1_000_000, test_amount_msat: '0', trusted_score: 0, min_score: 0.88, exponent: 2 });
    for (let i = 0; i < 3; i++) {
      const made = await client.request('make_invoice', { amount: 1_000 * SAT });
      expect(made.error).toBeNull();
      expect(await operatorOfInvoice(made.result.payment_hash)).toBe(best!.nodePubkey);
    }
    // With everyone trusted and a 40 % share cap, a receipt goes to an operator below its target.
    await api('PUT', '/api/policy', { max_share_ppm: 400_000, test_amount_msat: '0', trusted_score: 0, min_score: 0.05, exponent: 2 });
    const view = (await api('GET', '/api/allocation')).json;
    const below = view.operators.filter((o: any) => BigInt(o.target_msat) > BigInt(o.balance_msat)).map((o: any) => o.node_pubkey);
    expect(below.length).toBeGreaterThan(0);
    const made = await client.request('make_invoice', { amount: 1_000 * SAT });
    expect(below).toContain(await operatorOfInvoice(made.result.payment_hash));
  });
});
