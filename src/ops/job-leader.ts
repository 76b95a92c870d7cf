import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';

/** The lease the instance running the background jobs holds (a row of `job_leases`). */
export const BACKGROUND_JOBS_LEASE = 'background-jobs';

export interface JobLeaderOptions {
  /** How long a lease holds without renewal (default 15 s): the longest a dead leader's jobs wait. */
  leaseSeconds?: number;
  /** Told each change: true when this instance became the leader, false when it stopped being it. */
  onChange?: (isLeader: boolean) => void;
  /**
   * Names this instance in `job_leases.holder` (default: a random id). A stable one per machine
   * (Fly's machine id) lets a restarted machine take its own lease back at once; two live
   * instances must never share one.
   */
  instanceId?: string | undefined;
}

/**
 * Decides which one of several bridge instances on one database runs the background jobs
 * (reconciliation, pending-payment refresh, score refresh, info-event republishing, the
 * notification outbox), so each runs once across instances.
 *
 * The leader holds a lease: one conditional upsert of a `job_leases` row, which succeeds for the
 * holder (renewal) or for anyone once the lease lapsed, judged by the database's clock. Every
 * instance tries every third of the lease; the leader renews then. An instance counts itself
 * leader only until 90 % of the lease after it last sent a successful renewal, so by the time
 * another instance can take the lease, the old one has stopped starting jobs. `stop()` ends the
 * lease at once for another instance to take. A job run that overlaps its successor's after a
 * stall (a leader frozen past its lease) does no harm: every job is idempotent.
 *
 * Why a lease row and not a session advisory lock: a lock held on a pooled connection for
 * hours dies with that connection, and node-postgres raises an uncaught error when a
 * checked-out idle connection is closed by the server; a lease needs no held connection, works
 * the same on PGlite (where the single instance simply always wins it), and mirrors how
 * requests are claimed (`nwc_requests.lease_until`).
 */
export class JobLeader {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #leaseSeconds: number;
  readonly #onChange: ((isLeader: boolean) => void) | undefined;
  readonly id: string;
  /** performance.now() until which this instance may start jobs; 0 when it does not lead. */
  #validUntil = 0;
  #leader = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #trying: Promise<void> | undefined;

  constructor(db: Db, logger: Logger, options: JobLeaderOptions = {}) {
    this.#db = db;
    this.#logger = logger;
    this.#leaseSeconds = options.leaseSeconds ?? 15;
    this.#onChange = options.onChange;
    this.id = options.instanceId ?? randomUUID();
  }

  /** Whether this instance may start a background job now. */
  isLeader(): boolean {
    if (this.#stopped || !this.#leader) return false;
    if (performance.now() < this.#validUntil) return true;
    // The renewal is late (database slow or unreachable): stop starting jobs until it succeeds.
    this.#set(false);
    return false;
  }

  /**
   * Tries to lead now, then renews or tries again every third of the lease. On PGlite (a database
   * one process owns) the instance leads at once and for good: no other can exist, and a lease
   * left by a killed process must not delay the jobs of its restart.
   */
  async start(): Promise<void> {
    const { rows } = await sql<{ version: string }>`select version() as version`.execute(this.#db);
    if (rows[0]?.version.includes('PGlite')) {
      this.#validUntil = Number.POSITIVE_INFINITY;
      this.#set(true);
      return;
    }
    await this.#try();
    const every = (this.#leaseSeconds * 1000) / 3;
    this.#timer = setInterval(() => void this.#try(), every);
    this.#timer.unref();
  }

  #try(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#trying ??= this.#acquireOrRenew().finally(() => (this.#trying = undefined));
    return this.#trying;
  }

  async #acquireOrRenew(): Promise<void> {
    const sentAt = performance.now();
    try {
      const { rows } = await sql<{ holder: string }>`
        insert into job_leases (name, holder, lease_until, acquired_at)
        values (${BACKGROUND_JOBS_LEASE}, ${this.id}, now() + make_interval(secs => ${this.#leaseSeconds}), now())
        on conflict (name) do update
          set holder = excluded.holder,
              lease_until = excluded.lease_until,
              acquired_at = case when job_leases.holder = excluded.holder then job_leases.acquired_at else now() end
          where job_leases.holder = excluded.holder or job_leases.lease_until < now()
        returning holder`.execute(this.#db);
      if (this.#stopped) return;
      if (rows.length === 1) {
        this.#validUntil = sentAt + this.#leaseSeconds * 1000 * 0.9;
        this.#set(true);
      } else {
        this.#validUntil = 0;
        this.#set(false);
      }
    } catch (err) {
      // Leadership lapses by itself (isLeader) if renewals keep failing.
      if (!this.#stopped) this.#logger.warn({ err: String(err) }, 'could not take or renew the background-job lease; will retry');
    }
  }

  #set(isLeader: boolean): void {
    if (this.#leader === isLeader) return;
    this.#leader = isLeader;
    this.#logger.info({ leader: isLeader, instance: this.id }, isLeader ? 'this instance now runs the background jobs' : 'this instance no longer runs the background jobs');
    this.#onChange?.(isLeader);
  }

  /** Stops leading and trying to; ends a held lease at once so another instance takes over. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    clearInterval(this.#timer);
    await this.#trying;
    this.#stopped = true;
    const wasLeader = this.#leader;
    this.#validUntil = 0;
    this.#set(false);
    if (!wasLeader) return;
    try {
      await sql`update job_leases set lease_until = 'epoch' where name = ${BACKGROUND_JOBS_LEASE} and holder = ${this.id}`.execute(this.#db);
    } catch (err) {
      this.#logger.warn({ err: String(err) }, 'could not end the background-job lease; another instance takes it when it lapses');
    }
  }
}

export interface LeaderJob {
  /** Runs the job now if this instance leads and it is not running already; resolves when done. */
  runNow(): Promise<void>;
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `job` every `intervalMs` on the instance that leads (skipped elsewhere), never two runs
 * at once in one instance, telling `ran` each run's outcome. A failing run is logged and the
 * job runs again at the next tick.
 */
export function leaderJob(
  name: string,
  intervalMs: number,
  leader: Pick<JobLeader, 'isLeader'>,
  job: () => Promise<unknown>,
  hooks: { logger: Logger; ran?: ((job: string, outcome: 'ok' | 'failed') => void) | undefined },
): LeaderJob {
  let running: Promise<void> | undefined;
  let stopped = false;
  const runNow = (): Promise<void> => {
    if (running) return running;
    if (stopped || !leader.isLeader()) return Promise.resolve();
    running = job()
      .then(
        () => hooks.ran?.(name, 'ok'),
        (err: unknown) => {
          hooks.ran?.(name, 'failed');
          hooks.logger.warn({ err, job: name }, 'background job failed; will run again');
        },
      )
      .finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void runNow(), intervalMs);
  timer.unref();
  return {
    runNow,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
