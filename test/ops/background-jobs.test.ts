import { afterAll, describe, expect, it } from 'vitest';
import { Relay } from 'nostr-tools/relay';
import type { Event } from 'nostr-tools/pure';
import { startBridge, type RunningBridge } from '../../src/app.ts';
import { startDevnet } from '../../src/devnet/devnet.ts';
import { openDatabase, type Db } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { silentLogger } from '../../src/log.ts';
import { JobLeader, leaderJob, type LeaderJob } from '../../src/ops/job-leader.ts';
import { createPostgresDatabase } from '../helpers/database.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, startWorld, waitFor, type World } from '../helpers/world.ts';

interface Run {
  instance: number;
  start: number;
  end: number;
}

/** Instances (each its own pool, as separate processes have) on one PostgreSQL database. */
async function instancesOnOneDatabase(count: number) {
  const pg = await createPostgresDatabase();
  const dbs: Db[] = [];
  for (let i = 0; i < count; i++) dbs.push((await openDatabase({ databaseUrl: pg.url, poolSize: 2 })).db);
  await migrateToLatest(dbs[0]!);
  return {
    dbs,
    close: async () => {
      // A test may have destroyed one already (a dead instance); ending a pool twice throws.
      for (const db of dbs) await db.destroy().catch(() => undefined);
      await pg.drop();
    },
  };
}

describe('the background-job lease on PostgreSQL', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('among three instances, one leads at a time; a stopped leader hands over at once, a dead one when its lease lapses', async () => {
    const { dbs, close } = await instancesOnOneDatabase(3);
    cleanups.push(close);
    const leaders = dbs.map((db, i) => new JobLeader(db, silentLogger, { leaseSeconds: 2, instanceId: `instance-${i}` }));
    cleanups.unshift(async () => {
      for (const l of leaders) await l.stop();
    });
    let overlaps = 0;
    const leading = () => {
      const now = leaders.filter((l) => l.isLeader());
      if (now.length > 1) overlaps++;
      return now;
    };
    await Promise.all(leaders.map((l) => l.start()));
    await waitFor(() => leading().length === 1, 'one leader');
    const first = leading()[0]!;

    // A clean stop ends the lease: another instance takes it at its next try.
    await first.stop();
    await waitFor(() => leading().length === 1, 'a second leader');
    const second = leading()[0]!;
    expect(second).not.toBe(first);

    // A leader whose database goes away (a dead process) loses the lease when it lapses.
    await dbs[leaders.indexOf(second)]!.destroy();
    await waitFor(() => leading().length === 1 && !second.isLeader(), 'the third leader', 20_000);
    const third = leading()[0]!;
    expect([first, second]).not.toContain(third);
    expect(overlaps).toBe(0);
    const [lease] = await dbs[leaders.indexOf(third)]!.withTables<{ job_leases: { name: string; holder: string } }>().selectFrom('job_leases').select(['name', 'holder']).execute();
    expect(lease).toEqual({ name: 'background-jobs', holder: third.id });
  });

  it('runs a job on the leader only, never two runs at once across two instances, and goes on after a handover', async () => {
    const { dbs, close } = await instancesOnOneDatabase(2);
    cleanups.push(close);
    const runs: Run[] = [];
    const leaders = dbs.map((db) => new JobLeader(db, silentLogger, { leaseSeconds: 2 }));
    const jobs: LeaderJob[] = leaders.map((leader, instance) =>
      leaderJob(
        'test-job',
        50,
        leader,
        async () => {
          const start = performance.now();
          await new Promise((r) => setTimeout(r, 30));
          runs.push({ instance, start, end: performance.now() });
        },
        { logger: silentLogger },
      ),
    );
    cleanups.unshift(async () => {
      for (const j of jobs) await j.stop();
      for (const l of leaders) await l.stop();
    });
    await Promise.all(leaders.map((l) => l.start()));
    await waitFor(() => runs.length >= 5, 'five runs');
    const leaderIndex = leaders.findIndex((l) => l.isLeader());
    expect(leaderIndex).toBeGreaterThanOrEqual(0);
    expect(new Set(runs.map((r) => r.instance))).toEqual(new Set([leaderIndex]));

    await jobs[leaderIndex]!.stop();
    await leaders[leaderIndex]!.stop();
    const handedOverAt = runs.length;
    await waitFor(() => runs.length >= handedOverAt + 5, 'five runs on the other instance');
    expect(new Set(runs.slice(handedOverAt).map((r) => r.instance))).toEqual(new Set([1 - leaderIndex]));
    // Sorted by start, each run ends before the next starts: never two at once.
    const sorted = [...runs].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.start).toBeGreaterThanOrEqual(sorted[i - 1]!.end);
  });

  it('lets a restarted machine (same instance id) take back its lease at once, and nobody else before it lapses', async () => {
    const { dbs, close } = await instancesOnOneDatabase(3);
    cleanups.push(close);
    const crashed = new JobLeader(dbs[0]!, silentLogger, { leaseSeconds: 30, instanceId: 'machine-a' });
    await crashed.start();
    expect(crashed.isLeader()).toBe(true);
    await dbs[0]!.destroy(); // killed: the lease is not ended
    const other = new JobLeader(dbs[1]!, silentLogger, { leaseSeconds: 30, instanceId: 'machine-b' });
    const restarted = new JobLeader(dbs[2]!, silentLogger, { leaseSeconds: 30, instanceId: 'machine-a' });
    cleanups.unshift(async () => {
      await other.stop();
      await restarted.stop();
      await crashed.stop();
    });
    await other.start();
    expect(other.isLeader()).toBe(false);
    await restarted.start();
    expect(restarted.isLeader()).toBe(true);
  });

  it('leads at once on PGlite (the single instance)', async () => {
    const { db } = await openDatabase({});
    await migrateToLatest(db);
    const leader = new JobLeader(db, silentLogger);
    await leader.start();
    expect(leader.isLeader()).toBe(true);
    await leader.stop();
    expect(leader.isLeader()).toBe(false);
    await db.destroy();
  });
});

/** Every NIP-47 notification event (both kinds) the relay carries to `pubkey`. */
async function watchNotifications(relayUrl: string, pubkey: string) {
  const relay = await Relay.connect(relayUrl);
  const events = new Map<string, Event>();
  relay.subscribe([{ kinds: [23196, 23197], '#p': [pubkey] }], { onevent: (event: Event) => events.set(event.id, event) });
  let all = 0;
  relay.subscribe([{ kinds: [23196, 23197], '#p': [pubkey] }], { onevent: () => all++ });
  return { distinct: () => events.size, deliveries: () => all, close: () => relay.close() };
}

async function metric(bridge: RunningBridge, name: string): Promise<number> {
  const text = await (await fetch(`${bridge.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? 'NaN');
}

describe('three bridge instances on one PostgreSQL', () => {
  let world: World | undefined;
  afterAll(async () => {
    await world?.stop();
  });

  it('run the background jobs on one of them, send each notification once, and hand the jobs over when it stops', async () => {
    world = await startWorld('postgres');
    const bridges = [world.bridge, await world.startAnotherInstance(), await world.startAnotherInstance()];
    for (const b of bridges) await waitFor(async () => (await fetch(`${b.url}/health`)).status === 200, 'instance healthy');
    await waitFor(() => bridges.filter((b) => b.jobs.isLeader()).length === 1, 'one leader');
    expect(await Promise.all(bridges.map((b) => metric(b, 'deposit_bridge_job_leader')))).toEqual(bridges.map((b) => (b.jobs.isLeader() ? 1 : 0)));
    const leader = bridges.find((b) => b.jobs.isLeader())!;
    const follower = bridges.find((b) => !b.jobs.isLeader())!;

    // A connection registered at a follower: its payments' notifications are sent by the leader, once.
    const uri = (await runCli(['connect', '--url', follower.url, '--methods', 'get_balance,make_invoice,lookup_invoice,notifications'])).lastLine;
    const client = new RawNwcClient(uri, 'nip44_v2');
    const watcher = await watchNotifications(world.devnet.relayUrl, client.pubkey);
    try {
      const pay = async (amount: number) => {
        const made = await client.request('make_invoice', { amount });
        expect(made.error).toBeNull();
        await world!.devnet.payInvoice(made.result.invoice);
        return made.result.payment_hash as string;
      };
      await pay(10_000_000);
      await waitFor(() => watcher.distinct() === 2, 'payment_received on both kinds');
      const notificationRows = async () => (await leader.wallet.db.selectFrom('notifications').select(['published_at']).execute()).map((r) => r.published_at !== null);
      await waitFor(async () => (await notificationRows()).every(Boolean), 'outbox sent');

      // The leader stops (a deploy replaces it): another instance leads at once and sends the outbox.
      await leader.stop();
      const rest = bridges.filter((b) => b !== leader);
      await waitFor(() => rest.filter((b) => b.jobs.isLeader()).length === 1, 'a new leader');
      await pay(20_000_000);
      await waitFor(() => watcher.distinct() === 4, 'the second payment_received on both kinds');
      await new Promise((r) => setTimeout(r, 2_000));
      // Each notification event was published once: two payments, two kinds.
      expect(watcher.distinct()).toBe(4);
      expect(watcher.deliveries()).toBe(4);
      const rows = await rest[0]!.wallet.db.selectFrom('notifications').select(['type', 'published_at']).execute();
      expect(rows).toHaveLength(2);
      expect(rows.every((r) => r.published_at !== null)).toBe(true);
      expect(await Promise.all(rest.map((b) => metric(b, 'deposit_bridge_job_leader')))).toEqual(rest.map((b) => (b.jobs.isLeader() ? 1 : 0)));
    } finally {
      watcher.close();
      client.close();
    }
  });
});

describe('the real background jobs on three bridges sharing one PostgreSQL', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('run on the leader only (reconciliation every second), and on the next leader once it stops', async () => {
    const devnet = await startDevnet({ dataDir: null, relayPort: 0, controlPort: 0, operatorPorts: [0, 0, 0], auditorPort: 0 });
    cleanups.push(() => devnet.stop());
    const database = await createPostgresDatabase();
    cleanups.push(() => database.drop());
    const masterKey = crypto.getRandomValues(new Uint8Array(32));
    const bridges: RunningBridge[] = [];
    cleanups.push(async () => {
      for (const b of bridges) await b.stop();
    });
    for (let i = 0; i < 3; i++) {
      const { db } = await openDatabase({ databaseUrl: database.url, poolSize: 3 });
      await migrateToLatest(db);
      bridges.push(
        await startBridge({
          db,
          masterKey,
          relays: [devnet.relayUrl],
          operators: devnet.vaultsFile.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
          auditors: devnet.vaultsFile.auditors,
          httpHost: '127.0.0.1',
          httpPort: 0,
          alias: `bridge-${i}`,
          drainTimeoutMs: 500,
          reconcileIntervalSeconds: 1,
          jobLeaseSeconds: 3,
          logger: silentLogger,
        }),
      );
    }
    const reconcileRuns = (b: RunningBridge) => metric(b, 'deposit_bridge_reconciliation_runs_total');
    await waitFor(() => bridges.filter((b) => b.jobs.isLeader()).length === 1, 'one leader');
    const leader = bridges.find((b) => b.jobs.isLeader())!;
    await waitFor(async () => (await reconcileRuns(leader)) >= 3, 'three reconciliations on the leader');
    const followers = bridges.filter((b) => b !== leader);
    for (const f of followers) expect(await reconcileRuns(f)).toBe(0);

    await leader.stop();
    await waitFor(() => followers.filter((b) => b.jobs.isLeader()).length === 1, 'a new leader');
    const next = followers.find((b) => b.jobs.isLeader())!;
    await waitFor(async () => (await reconcileRuns(next)) >= 3, 'three reconciliations on the new leader');
    expect(await reconcileRuns(followers.find((b) => b !== next)!)).toBe(0);
  });
});
