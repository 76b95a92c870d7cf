/**
 * Fuzz: generated HTTP requests to the bridge's API (POST /api/connections, POST /api/lock,
 * GET /api/audit) and to every devnet vault operator's Vault API (POST /v0/deposits and, for the
 * funded user's deposits and others, …/invoices, …/payments, …/grants, …/lock): garbage and
 * broken NIP-98 auth, bodies of every wrong shape, signed statements broken, forged, stale or
 * someone else's, amounts huge, negative and fractional, pay requests whose authorization is
 * wrong in one way each.
 *
 * Shown: never a 5xx; every refusal is 4xx with the documented `{"error": {"code", "message"}}`
 * body and no internals; only the harmless valid family ever succeeds; no unhandled rejection
 * or exception and no error logged by the bridge; and no money moves: the bridge's deposits and
 * journal, and each vault's balances, reservations, locks and money metrics, are as before.
 *
 * FUZZ_RUNS (total inputs of the fuzz suites, 1/4 of them HTTP requests here) and FUZZ_SEED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateSecretKey } from 'nostr-tools/pure';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { startFuzzWorld, type FuzzWorld } from './fuzz-world.ts';
import { brief, clientKeys, fuzzBudget, installCrashGuard, journalMismatches, leakedInternals, moneySnapshot, recordingLogger, timeoutFor, type LoggedEntry, type MoneySnapshot } from './harness.ts';
import { buildRequest, httpCaseArb, type HttpCase, type HttpWorld } from './http-cases.ts';
import { makeInvoicePools } from './nwc-cases.ts';
import { fund, register, vaultDeposits, vaultMetrics } from './setup.ts';

const budget = fuzzBudget();
const BATCH = 8;
const FUNDED_MSAT = 20_000_000;
const COLLECT = process.env.FUZZ_COLLECT === '1';

describe(`HTTP fuzz: ${budget.http} generated requests`, () => {
  const guard = installCrashGuard();
  const recording = recordingLogger('error');
  const logged: LoggedEntry[] = recording.entries;
  let world: FuzzWorld;
  let http: HttpWorld;
  let ownerPubkey: string;
  let before: MoneySnapshot;
  let vaultsBefore: Map<string, string>;
  let metricsBefore: Map<string, string>;
  const collected: string[] = [];
  const stats = { requests: 0, byRoute: new Map<string, number>(), byStatus: new Map<string, number>() };

  beforeAll(async () => {
    world = await startFuzzWorld(recording.logger);
    const owner = await register(world, [...SERVED_METHODS]);
    ownerPubkey = owner.userPubkey;
    await fund(world, owner, FUNDED_MSAT);
    const db = world.bridge.wallet.db;
    const deposits = await db
      .selectFrom('deposits')
      .innerJoin('vault_operators', 'vault_operators.node_pubkey', 'deposits.operator_pubkey')
      .select(['deposits.remote_deposit_id as id', 'vault_operators.url as url'])
      .where('deposits.user_pubkey', '=', owner.userPubkey)
      .execute();
    const operatorUrls = world.devnet.operators.map((op) => op.url);
    const grantRow = await db.selectFrom('connections').select('grant_event').where('pubkey', '=', owner.pubkey).executeTakeFirstOrThrow();
    http = {
      bridgeUrl: world.bridge.url,
      operatorUrls,
      ownDeposits: operatorUrls.map((url) => deposits.find((d) => d.url === url)?.id ?? 'missing'),
      keys: { owner: owner.userSecret, watcher: world.bridge.keys.vaultAuthSecret, stranger: generateSecretKey() },
      connection: clientKeys(owner.secret, owner.pubkey, world.bridge.keys.forConnection(owner.pubkey).pubkey),
      servicePubkey: world.bridge.keys.forConnection(owner.pubkey).pubkey,
      grant: grantRow.grant_event,
      invoices: makeInvoicePools([]).unknownPayee,
    };
    expect(http.ownDeposits).not.toContain('missing');
    before = await moneySnapshot(db);
    vaultsBefore = await vaultDeposits(world);
    metricsBefore = await vaultMetrics(world);
  }, 180_000);

  afterAll(async () => {
    guard.dispose();
    await world?.stop();
  });

  /** What is wrong with the answer to `c`, if anything. */
  async function problemWith(c: HttpCase, res: Response): Promise<string | undefined> {
    const text = await res.text();
    const status = res.status;
    stats.byStatus.set(`${c.route} ${status}`, (stats.byStatus.get(`${c.route} ${status}`) ?? 0) + 1);
    if (status >= 500) return `status ${status}: ${text.slice(0, 500)}`;
    if (status < 400) {
      if (!c.valid) return `status ${status} for a request with a defect: ${text.slice(0, 300)}`;
      return undefined;
    }
    if (status < 400 || status > 499) return `status ${status}`;
    let body: { error?: { code?: unknown; message?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return `status ${status} with a body that is not JSON: ${text.slice(0, 300)}`;
    }
    if (!(res.headers.get('content-type') ?? '').includes('application/json')) return `status ${status} with content-type ${res.headers.get('content-type')}`;
    const code = body.error?.code;
    const message = body.error?.message;
    if (typeof code !== 'string' || !/^[A-Z_]{3,40}$/.test(code) || typeof message !== 'string') return `status ${status} without the documented error body: ${text.slice(0, 300)}`;
    const leak = leakedInternals(message);
    if (leak) return `error message leaks internals (${leak}): ${message}`;
    return undefined;
  }

  async function runBatch(batch: HttpCase[]): Promise<void> {
    const failures: string[] = [];
    await Promise.all(
      batch.map(async (c) => {
        stats.requests++;
        stats.byRoute.set(c.route, (stats.byRoute.get(c.route) ?? 0) + 1);
        const request = buildRequest(c, http);
        let problem: string | undefined;
        try {
          const res = await fetch(request.url, { method: request.method, headers: request.headers, ...(request.body !== undefined ? { body: request.body } : {}) });
          problem = await problemWith(c, res);
        } catch (error) {
          problem = `request failed: ${String(error)}${error instanceof Error && error.cause ? ` (${String(error.cause)})` : ''}`;
        }
        if (problem) failures.push(`${problem}\n  case: ${brief(c, 1_500)}\n  request: ${request.method} ${request.url} ${brief(request.headers, 400)} ${brief(request.body === undefined ? '' : Buffer.from(request.body).toString('utf8'), 800)}`);
      }),
    );
    if (failures.length === 0) return;
    const tail = logged.length > 0 ? `\nerror logs:\n${logged.map((e) => e.line).join('\n')}` : '';
    const report = `${failures.length} of ${batch.length} requests mishandled:\n${failures.join('\n')}${tail}`;
    if (!COLLECT) throw new Error(report);
    collected.push(report);
    logged.length = 0;
  }

  it(
    'answers every request below 500, refusals 4xx with the documented error body, successes only for valid requests',
    async () => {
      const started = Date.now();
      await fc.assert(fc.asyncProperty(fc.array(httpCaseArb(SERVED_METHODS), { minLength: BATCH, maxLength: BATCH }), runBatch), {
        numRuns: Math.ceil(budget.http / BATCH),
        ...(budget.seed !== undefined ? { seed: budget.seed } : {}),
        endOnFailure: process.env.FUZZ_SHRINK !== '1',
      });
      const seconds = (Date.now() - started) / 1000;
      if (collected.length > 0) console.log(`http fuzz: ${collected.length} batches mishandled requests:\n${collected.join('\n\n')}`);
      console.log(
        `http fuzz: ${stats.requests} requests in ${seconds.toFixed(1)} s\n` +
          `  by route: ${[...stats.byRoute].map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
          `  statuses: ${[...stats.byStatus].sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`,
      );
      expect(collected).toEqual([]);
    },
    timeoutFor(budget.http, 40),
  );

  it('moves no money: bridge deposits and journal, vault balances, reservations, locks and metrics as before', async () => {
    const db = world.bridge.wallet.db;
    const after = await moneySnapshot(db);
    for (const [id, money] of before.deposits) expect(after.deposits.get(id), `deposit ${id}`).toEqual(money);
    for (const [id, money] of after.deposits) if (!before.deposits.has(id)) expect(money, `new deposit ${id}`).toEqual({ confirmed: 0n, reserved: 0n });
    expect(after.journalEntries).toBe(before.journalEntries);
    expect(await journalMismatches(db)).toEqual([]);
    expect(after.settled).toEqual(before.settled);
    const owner = await db.selectFrom('users').select('locked').where('pubkey', '=', ownerPubkey).executeTakeFirstOrThrow();
    expect(owner.locked).toBe(false);
    const vaultsAfter = await vaultDeposits(world);
    for (const [key, state] of vaultsBefore) expect(vaultsAfter.get(key), key).toBe(state);
    for (const [key, state] of vaultsAfter) if (!vaultsBefore.has(key)) expect(state, key).toBe('balance 0 reserved 0 locked false');
    expect(await vaultMetrics(world)).toEqual(metricsBefore);
  });

  it('never crashed and logged no error', () => {
    expect(guard.errors.map((e) => (e instanceof Error ? e.stack : String(e)))).toEqual([]);
    expect(logged.map((e) => e.line)).toEqual([]);
  });
});
