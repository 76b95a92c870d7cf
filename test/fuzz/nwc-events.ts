/**
 * Fuzz: generated NIP-47 events straight into a real responder.
 *
 * A devnet and a bridge run as `npm start` runs them (startWorld); five connections are
 * registered through the HTTP API (a funded one, a limited one of the same user, an unfunded
 * user's, a revoked and a soon-expiring one) and sixteen unknown keys stand by. A second
 * NwcResponder on the same database, wallet and keys gets the generated events through a
 * transport that only records what it publishes, so 100 000 events need no websocket.
 *
 * Shown: nothing crashes (no unhandled rejection or exception, no error logged); every event a
 * relay would deliver to the bridge that is for it, of kind 23194 and not expired gets exactly
 * one response, from the documented codes (a result only where the request is valid), never
 * carrying internals; the others get none; a request seen again gets the very same response;
 * and no money moves: deposits, settled transactions and the vaults' balances are as before,
 * and every journal entry written is a reservation released for a payment that failed.
 *
 * FUZZ_RUNS (total inputs of the fuzz suites, 3/4 of them events, split between the shards
 * nwc-events-1 and -2 so that `vitest --maxWorkers=2` runs them side by side) and FUZZ_SEED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateSecretKey, getPublicKey, verifyEvent, type Event } from 'nostr-tools/pure';
import { SERVED_METHODS } from '../../src/nwc/methods/registry.ts';
import { NwcResponder } from '../../src/nwc/responder.ts';
import { nowSeconds } from '../../src/protocol/nostr-event.ts';
import { startFuzzWorld, type FuzzWorld } from './fuzz-world.ts';
import {
  brief,
  CapturingTransport,
  clientKeys,
  decryptFrom,
  fuzzBudget,
  installCrashGuard,
  journalChangesSince,
  journalMismatches,
  leakedInternals,
  moneySnapshot,
  recordingLogger,
  timeoutFor,
  type ClientKeys,
  type LoggedEntry,
  type MoneySnapshot,
} from './harness.ts';
import {
  DOCUMENTED_CODES,
  eventCaseArb,
  expectationFor,
  LIMITED_MAX_MSAT,
  LIMITED_METHODS,
  makeInvoicePools,
  materialize,
  schemeOf,
  signerOf,
  STRANGERS,
  type EventCase,
  type Expectation,
  type Signers,
} from './nwc-cases.ts';
import { fund, register, vaultDeposits, vaultMetrics } from './setup.ts';

const BATCH = 8;
const FUNDED_MSAT = 50_000_000;
const RESPONSE_TIMEOUT_MS = 20_000;
/** How long after setup the expiring connection's grant ends: inside the run, so both sides are seen. */
const EXPIRING_AFTER_SECONDS = 6;
/** FUZZ_COLLECT=1: keep going after a mishandled event and list them all at the end (for triage). */
const COLLECT = process.env.FUZZ_COLLECT === '1';

interface Sent {
  c: EventCase;
  event: Event;
  expectation: Expectation;
}

/** Defines the suite for shard `shard` (1-based) of `shards`: its own world, its share of the events. */
export function describeEventFuzz(shard: number, shards: number): void {
  const budget = fuzzBudget();
  const events = Math.ceil(budget.events / shards);
  const seed = budget.seed === undefined ? undefined : budget.seed + shard;
  const collected: string[] = [];

  describe(`NIP-47 fuzz, shard ${shard}/${shards}: ${events} generated events`, () => {
    const guard = installCrashGuard();
    let world: FuzzWorld;
    let transport: CapturingTransport;
    let responder: NwcResponder;
    let logged: LoggedEntry[];
    let signers: Signers;
    let expiringAt: number;
    let before: MoneySnapshot;
    let vaultsBefore: Map<string, string>;
    let pools: ReturnType<typeof makeInvoicePools>;
    let metricsBefore: Map<string, string>;
    const ignored = new Map<string, EventCase>();
    const answered = new Map<string, EventCase>();
    /** Requests the bridge stored an answer for, to deliver again. */
    const redeliverable: { event: Event; c: EventCase; responseId: string }[] = [];
    let stored = 0;
    let checked = 0;
    const seen = new Set<string>();
    const stats = { events: 0, ignored: 0, redelivered: 0, byCategory: new Map<string, number>(), byCode: new Map<string, number>() };

    beforeAll(async () => {
      const recording = recordingLogger('error');
      logged = recording.entries;
      // The running bridge logs into the same place: an error anywhere fails the suite.
      world = await startFuzzWorld(recording.logger);
      const all = [...SERVED_METHODS];
      const full = await register(world, all);
      const limited = await register(world, LIMITED_METHODS, { maxAmountMsat: BigInt(LIMITED_MAX_MSAT), budget: { amountMsat: 1_500_000n, renewal: 'daily' } }, full.userSecret);
      const poor = await register(world, all);
      const revoked = await register(world, all, {}, poor.userSecret);
      // No API revokes yet (a revoked grant is refused at registration): mark the row as a revocation would.
      await world.bridge.wallet.db.updateTable('connections').set({ revoked: true }).where('pubkey', '=', revoked.pubkey).execute();

      await fund(world, full, FUNDED_MSAT);
      const service = world.bridge.keys.servicePubkey;
      // Each connection talks to its own wallet service key; strangers to the bridge-wide one.
      const keysOf = (r: { secret: Uint8Array; pubkey: string }) => clientKeys(r.secret, r.pubkey, world.bridge.keys.forConnection(r.pubkey).pubkey);
      const strangers: ClientKeys[] = Array.from({ length: STRANGERS }, () => {
        const secret = generateSecretKey();
        return clientKeys(secret, getPublicKey(secret), service);
      });
      const nobody = generateSecretKey();

      const realInvoices = await Promise.all([1_000n, 2_000_000n, null].map(async (amount) => (await world.devnet.createPayeeInvoice(amount)).invoice));
      pools = makeInvoicePools(realInvoices);

      expiringAt = nowSeconds() + EXPIRING_AFTER_SECONDS;
      const expiring = await register(world, all, { expiresAt: expiringAt }, full.userSecret);
      signers = {
        known: { full: keysOf(full), limited: keysOf(limited), poor: keysOf(poor), revoked: keysOf(revoked), expiring: keysOf(expiring) },
        strangers,
        wrong: clientKeys(nobody, getPublicKey(nobody), service),
      };

      transport = new CapturingTransport();
      responder = new NwcResponder(
        world.bridge.wallet.db,
        transport,
        world.bridge.keys,
        world.bridge.wallet,
        { alias: 'fuzz-bridge', servedMethods: SERVED_METHODS },
        recording.logger,
        // The fuzz sends far faster than any app: rate limiting has its own test.
        { rateLimit: { perSecond: 1e9, burst: 1e9 } },
      );
      await responder.start();
      expect(transport.subscribed).toBe(true);

      before = await moneySnapshot(world.bridge.wallet.db);
      vaultsBefore = await vaultDeposits(world);
      metricsBefore = await vaultMetrics(world);
    }, 180_000);

    afterAll(async () => {
      guard.dispose();
      await world?.stop();
    });

    const logTail = () => (logged.length > 0 ? `\nerror logs:\n${logged.map((e) => e.line).join('\n')}` : '');

    /** What is wrong with `response` as the answer to `sent`, if anything. */
    function problemWith(sent: Sent, response: Event): string | undefined {
      const { c, event, expectation } = sent;
      if (!expectation.respond) return 'answered an event that must be ignored';
      const keys = signerOf(c, signers);
      if (response.kind !== 23195) return `response kind ${response.kind}`;
      if (response.pubkey !== keys.servicePubkey) return 'response not signed by the service key';
      if (!response.tags.some((t) => t[0] === 'p' && t[1] === event.pubkey)) return 'response has no p tag of the requester';
      // Verifying costs as much as signing: every 20th response is enough to catch a bad signer.
    if (++checked % 20 === 0 && !verifyEvent({ ...response })) return 'response signature does not verify';
      let body: { result_type?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } | null };
      try {
        body = JSON.parse(decryptFrom(keys, expectation.scheme, response.content)) as typeof body;
      } catch (error) {
        return `response does not decrypt with ${expectation.scheme}: ${String(error)}`;
      }
      if (typeof body.result_type !== 'string') return `result_type ${brief(body.result_type)}`;
      if (expectation.resultType !== undefined && body.result_type !== expectation.resultType) return `result_type ${body.result_type}, expected ${expectation.resultType}`;
      const error = body.error;
      if (error !== null && error !== undefined) {
        const { code, message } = error;
        if (typeof code !== 'string' || typeof message !== 'string') return `error is not {code, message}: ${brief(error)}`;
        stats.byCode.set(code, (stats.byCode.get(code) ?? 0) + 1);
        if (!DOCUMENTED_CODES.has(code)) return `undocumented error code ${code}: ${message}`;
        const leak = leakedInternals(message);
        if (leak) return `error message leaks internals (${leak}): ${message}`;
        if (body.result !== null && body.result !== undefined) return 'both result and error';
        if (!expectation.allowed.has(code)) return `${code} (${message}), expected ${[...expectation.allowed].join(' or ')}`;
        return undefined;
      }
      stats.byCode.set('result', (stats.byCode.get('result') ?? 0) + 1);
      if (!expectation.allowed.has('result')) return `a result ${brief(body.result)}, expected ${[...expectation.allowed].join(' or ')}`;
      const result = body.result as Record<string, unknown> | null;
      if (typeof result !== 'object' || result === null) return `result is not an object: ${brief(result)}`;
      switch (expectation.outcome) {
        case 'info':
          if (result.pubkey !== keys.servicePubkey || !Array.isArray(result.methods)) return `get_info result ${brief(result)}`;
          break;
        case 'balance': {
          const limit = c.actor === 'full' || c.actor === 'expiring' || c.actor === 'limited' ? FUNDED_MSAT : 0;
          if (!Number.isSafeInteger(result.balance) || (result.balance as number) < 0 || (result.balance as number) > limit) return `balance ${brief(result.balance)} outside 0..${limit}`;
          break;
        }
        case 'invoice-made':
          if (typeof result.invoice !== 'string' || !result.invoice.startsWith('lnbcrt')) return `make_invoice result ${brief(result)}`;
          break;
        case 'list':
          if (!Array.isArray(result.transactions)) return `list_transactions result ${brief(result)}`;
          break;
        default:
          break;
      }
      return undefined;
    }

    async function runBatch(batch: EventCase[], redeliver: number | null): Promise<void> {
      const now = nowSeconds();
      const ctx = { now, served: SERVED_METHODS, expiringAt };
      const sent: Sent[] = batch.map((c) => {
        // Content without a random nonce (raw text, empty) can repeat an earlier event exactly: salt it.
        let event = materialize(c, signers, now);
        if (seen.has(event.id)) event = materialize(c, signers, now, seen.size);
        seen.add(event.id);
        return { c, event, expectation: expectationFor(c, ctx) };
      });
      for (const s of sent) transport.deliver(s.event);
      stats.events += sent.length;
      const failures: string[] = [];

      const again = redeliver === null || redeliverable.length === 0 ? undefined : redeliverable[redeliver % redeliverable.length];
      if (again) transport.deliver(again.event);

      await Promise.all(
        sent.map(async (s) => {
          stats.byCategory.set(s.c.category, (stats.byCategory.get(s.c.category) ?? 0) + 1);
          if (!s.expectation.respond) {
            stats.ignored++;
            ignored.set(s.event.id, s.c);
            return;
          }
          answered.set(s.event.id, s.c);
          const responses = await transport.responsesTo(s.event.id, RESPONSE_TIMEOUT_MS);
          const first = responses[0];
          if (!first) {
            failures.push(`no response within ${RESPONSE_TIMEOUT_MS} ms to ${brief(s.c, 2_000)} (event ${brief(s.event, 1_000)})`);
            return;
          }
          const problem = problemWith(s, first);
          if (problem) failures.push(`${problem}\n  case: ${brief(s.c, 2_000)}\n  event: ${brief(s.event, 1_000)}`);
          else if (s.c.actor !== 'stranger' && schemeOf(s.c.encryption) !== 'unsupported') {
            // Claimed and stored: a delivery of the same event must get this very response again.
            redeliverable[stored++ % 64] = { event: s.event, c: s.c, responseId: first.id };
          }
          transport.compact(s.event.id);
        }),
      );
      if (again) {
        stats.redelivered++;
        const responses = await transport.responsesTo(again.event.id, RESPONSE_TIMEOUT_MS, 2);
        const ids = new Set(responses.map((r) => r.id));
        if (responses.length < 2) failures.push(`no response to a request delivered again: ${brief(again.c)}`);
        else if (ids.size !== 1 || !ids.has(again.responseId)) failures.push(`a request delivered again got a different response: ${brief(again.c)}`);
      }
      if (failures.length === 0) return;
      const report = `${failures.length} of ${sent.length} events mishandled:\n${failures.join('\n')}${logTail()}`;
      if (!COLLECT) throw new Error(report);
      collected.push(report);
      logged.length = 0;
    }

    it(
      'answers each event it must, with a documented code or a result only where the request is valid, and ignores the rest',
      async () => {
        const numRuns = Math.ceil(events / BATCH);
        const started = Date.now();
        await fc.assert(
          fc.asyncProperty(fc.array(eventCaseArb(pools, SERVED_METHODS), { minLength: BATCH, maxLength: BATCH }), fc.option(fc.nat(), { freq: 6, nil: null }), runBatch),
          { numRuns, ...(seed !== undefined ? { seed } : {}), endOnFailure: process.env.FUZZ_SHRINK !== '1' },
        );
        const seconds = (Date.now() - started) / 1000;
        if (collected.length > 0) console.log(`nwc fuzz ${shard}/${shards}: ${collected.length} batches mishandled events:\n${collected.join('\n\n')}`);
        console.log(
          `nwc fuzz ${shard}/${shards}: ${stats.events} events (${stats.ignored} to ignore, ${stats.redelivered} delivered again) in ${seconds.toFixed(1)} s\n` +
            `  by category: ${[...stats.byCategory].map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
            `  answers: ${[...stats.byCode].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`,
        );
      },
      timeoutFor(events, 40),
    );

    it('mishandled nothing (FUZZ_COLLECT=1 runs)', () => {
      expect(collected).toEqual([]);
    });

    it('sends exactly one response per answered request and none for the ignored', async () => {
      await responder.drain(RESPONSE_TIMEOUT_MS);
      const problems: string[] = [];
      for (const [id, c] of ignored) {
        if (transport.responses.has(id)) problems.push(`answered an event to ignore: ${brief(c)}`);
      }
      for (const [id, c] of answered) {
        const ids = new Set((transport.responses.get(id) ?? []).map((r) => r.id));
        if (ids.size !== 1) problems.push(`${ids.size} distinct responses to ${brief(c)}`);
      }
      for (const id of transport.responses.keys()) {
        if (!answered.has(id) && !ignored.has(id)) problems.push(`a response to ${id}, which was never sent`);
      }
      expect(problems.slice(0, 20)).toEqual([]);
      expect(stats.events).toBeGreaterThanOrEqual(events);
    });

    it('moves no money: deposits, settled transactions, journal and vault balances as before', async () => {
      const db = world.bridge.wallet.db;
      const after = await moneySnapshot(db);
      expect(after.deposits).toEqual(before.deposits);
      expect(after.settled).toEqual(before.settled);
      const { moved, failedPayments } = await journalChangesSince(db, before);
      expect(moved).toEqual([]);
      console.log(`nwc fuzz ${shard}/${shards}: ${failedPayments} payments of unpayable invoices reserved, failed and released`);
      expect(await journalMismatches(db)).toEqual([]);
      expect(await vaultDeposits(world)).toEqual(vaultsBefore);
      expect(await vaultMetrics(world)).toEqual(metricsBefore);
    });

    it('never crashed and logged no error', () => {
      expect(guard.errors.map((e) => (e instanceof Error ? e.stack : String(e)))).toEqual([]);
      expect(logged.map((e) => e.line)).toEqual([]);
    });
  });
}
