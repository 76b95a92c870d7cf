/**
 * Shared pieces of the fuzz suites: how many inputs to generate, a guard that fails the run on
 * any unhandled rejection or exception, a logger that keeps error logs (with their stacks) for
 * the failure report, a relay transport that hands events straight to a responder and records
 * every response, NIP-98 headers signed fast, and snapshots of the money rows.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { pino, type Logger } from 'pino';
import type { Event } from 'nostr-tools/pure';
import { v2 as nip44 } from 'nostr-tools/nip44';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import type { Db } from '../../src/db/database.ts';
import type { RelayTransport } from '../../src/nwc/relay-pool.ts';
import { fastFinalizeEvent } from './fast-sign.ts';

// ---------------------------------------------------------------------------------------------
// How much to generate

/**
 * FUZZ_RUNS is the total number of generated inputs (NIP-47 events + HTTP bodies). The default
 * keeps `npm test` quick; `npm run fuzz` sets 100 000. FUZZ_SEED replays a run.
 */
export function fuzzBudget(): { total: number; events: number; http: number; relay: number; seed: number | undefined } {
  const total = positiveInt(process.env.FUZZ_RUNS, 2_000);
  const events = Math.ceil((total * 3) / 4);
  const seedText = process.env.FUZZ_SEED;
  const seed = seedText === undefined || seedText === '' ? undefined : Number(seedText);
  if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${seedText}`);
  return { total, events, http: total - events, relay: Math.min(2_000, Math.max(100, Math.floor(total / 50))), seed };
}

function positiveInt(text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`FUZZ_RUNS must be a positive integer, got ${text}`);
  return n;
}

/** A generous wall-clock budget for a suite of `count` inputs at `msEach`. */
export function timeoutFor(count: number, msEach: number): number {
  return 120_000 + count * msEach;
}

// ---------------------------------------------------------------------------------------------
// Crashes and error logs

/** Records every unhandled rejection and uncaught exception in this process until disposed. */
export function installCrashGuard(): { errors: unknown[]; dispose(): void } {
  const errors: unknown[] = [];
  const onRejection = (reason: unknown) => errors.push(reason);
  const onException = (error: unknown) => errors.push(error);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    errors,
    dispose: () => {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

export interface LoggedEntry {
  level: number;
  msg: string;
  line: string;
}

/** A pino logger that keeps every entry at `level` or above (JSON lines, stacks included). */
export function recordingLogger(level: 'warn' | 'error' = 'error'): { logger: Logger; entries: LoggedEntry[] } {
  const entries: LoggedEntry[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const parsed = JSON.parse(line) as { level: number; msg?: string };
          entries.push({ level: parsed.level, msg: parsed.msg ?? '', line });
        } catch {
          entries.push({ level: 60, msg: 'unparseable log line', line });
        }
      }
      done();
    },
  });
  return { logger: pino({ level }, stream), entries };
}

// ---------------------------------------------------------------------------------------------
// What must never reach a client

/** Markers of internals (stack frames, file paths, SQL, driver errors) a client must never see. */
const INTERNALS = [
  /\n\s*at\s/,
  /\bat\s+\S+\s+\(/,
  /node_modules/,
  /\.(ts|js|mjs|cjs):\d+/,
  /\/(src|work|home|tmp|usr)\//,
  /\b(select|insert|update|delete)\b.+\b(from|into|set|where)\b/i,
  /\brelation\s+"/i,
  /\bcolumn\s+"/i,
  /duplicate key|violates|syntax error at|deadlock|pglite|kysely|ECONNREFUSED|ECONNRESET/i,
  /TypeError|ReferenceError|RangeError|SyntaxError|Cannot read propert/,
];

/** The first internals marker `text` carries, if any. */
export function leakedInternals(text: string): string | undefined {
  return INTERNALS.find((re) => re.test(text))?.source;
}

// ---------------------------------------------------------------------------------------------
// A relay transport that is only a pipe

/**
 * Implements the responder's RelayTransport without a relay: `deliver` hands an event to the
 * subscriber as a relay would (no filtering: the responder must judge every event itself), and
 * every published event is recorded by the `e` tag it answers.
 */
export class CapturingTransport implements RelayTransport {
  /** The subscriptions the responder asked for, by id. */
  readonly subscriptions = new Map<string, Parameters<RelayTransport['setSubscription']>[1]>();
  #onEvent: ((event: Event) => void) | undefined;
  /** Responses by the request id in their `e` tag. */
  readonly responses = new Map<string, Event[]>();
  /** Published events without an `e` tag. */
  readonly other: Event[] = [];
  readonly #waiters = new Map<string, Set<() => void>>();
  published = 0;

  onEvent(handler: (event: Event) => void): void {
    this.#onEvent = handler;
  }

  setSubscription(id: string, filters: Parameters<RelayTransport['setSubscription']>[1]): void {
    this.subscriptions.set(id, filters);
  }

  get subscribed(): boolean {
    return this.#onEvent !== undefined && this.subscriptions.size > 0;
  }

  async publish(event: Event): Promise<void> {
    this.published++;
    const requestId = event.tags.find((t) => t[0] === 'e')?.[1];
    if (requestId === undefined) {
      this.other.push(event);
      return;
    }
    const list = this.responses.get(requestId) ?? [];
    list.push(event);
    this.responses.set(requestId, list);
    const waiters = this.#waiters.get(requestId);
    this.#waiters.delete(requestId);
    for (const wake of waiters ?? []) wake();
  }

  deliver(event: Event): void {
    if (!this.#onEvent) throw new Error('nothing subscribed');
    this.#onEvent(event);
  }

  /** Resolves with the responses to `requestId` once there are at least `count`, or after `timeoutMs` with what there is. */
  async responsesTo(requestId: string, timeoutMs: number, count = 1): Promise<Event[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const have = this.responses.get(requestId) ?? [];
      if (have.length >= count) return have;
      const left = deadline - Date.now();
      if (left <= 0) return have;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        const set = this.#waiters.get(requestId) ?? new Set();
        set.add(done);
        this.#waiters.set(requestId, set);
      });
    }
  }

  /** Drops the stored response bodies of a request (keeps how many and which ids). */
  compact(requestId: string): void {
    const list = this.responses.get(requestId);
    if (list) this.responses.set(requestId, list.map((e) => ({ ...e, content: '', tags: e.tags.filter((t) => t[0] === 'e') })));
  }
}

// ---------------------------------------------------------------------------------------------
// NIP-04 and NIP-44, client side, with cached keys

/** A client's shared secrets with the wallet service, computed once. */
export interface ClientKeys {
  secretKey: Uint8Array;
  pubkey: string;
  /** The wallet service key this client talks to (its connection's own, or the bridge-wide one). */
  servicePubkey: string;
  nip44: Uint8Array;
  nip04: Uint8Array;
}

export function clientKeys(secretKey: Uint8Array, pubkey: string, servicePubkey: string): ClientKeys {
  return {
    secretKey,
    pubkey,
    servicePubkey,
    nip44: nip44.utils.getConversationKey(secretKey, servicePubkey),
    nip04: secp256k1.getSharedSecret(secretKey, hexToBytes(`02${servicePubkey}`)).slice(1, 33),
  };
}

/** NIP-04 (AES-256-CBC, base64 `?iv=`), with node's own AES: independent of the bridge's code. */
export function nip04Encrypt(key: Uint8Array, plaintext: string): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `${ct.toString('base64')}?iv=${iv.toString('base64')}`;
}

export function nip04Decrypt(key: Uint8Array, content: string): string {
  const [ct, iv] = content.split('?iv=');
  if (ct === undefined || iv === undefined) throw new Error('not NIP-04 content');
  const decipher = createDecipheriv('aes-256-cbc', key, Buffer.from(iv, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
}

export function encryptFor(keys: ClientKeys, scheme: 'nip44_v2' | 'nip04', plaintext: string): string {
  return scheme === 'nip44_v2' ? nip44.encrypt(plaintext, keys.nip44) : nip04Encrypt(keys.nip04, plaintext);
}

export function decryptFrom(keys: ClientKeys, scheme: 'nip44_v2' | 'nip04', content: string): string {
  return scheme === 'nip44_v2' ? nip44.decrypt(content, keys.nip44) : nip04Decrypt(keys.nip04, content);
}

// ---------------------------------------------------------------------------------------------
// NIP-98

/** The NIP-98 event for a request, signed fast; `mutate` may break it before signing. */
export function nip98Event(secretKey: Uint8Array, url: string, method: string, body: string | undefined, mutate?: (template: { kind: number; created_at: number; tags: string[][]; content: string }) => void): Event {
  const template = {
    kind: 27235,
    created_at: Math.floor(Date.now() / 1000),
    tags: [
      ['u', url],
      ['method', method],
      ...(body !== undefined && body.length > 0 ? [['payload', bytesToHex(sha256(new TextEncoder().encode(body)))]] : []),
    ],
    content: '',
  };
  mutate?.(template);
  return fastFinalizeEvent(template, secretKey);
}

export function nip98Header(event: unknown): string {
  return `Nostr ${Buffer.from(JSON.stringify(event), 'utf8').toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------
// Money rows

export interface MoneySnapshot {
  deposits: Map<string, { confirmed: bigint; reserved: bigint }>;
  journalEntries: number;
  journalMaxId: bigint;
  settled: string[];
}

export async function moneySnapshot(db: Db): Promise<MoneySnapshot> {
  const deposits = await db.selectFrom('deposits').select(['id', 'confirmed_msat', 'reserved_msat']).orderBy('id').execute();
  const journal = await db
    .selectFrom('journal_entries')
    .select([sql<bigint>`count(*)::bigint`.as('n'), sql<bigint>`coalesce(max(id), 0)::bigint`.as('max_id')])
    .executeTakeFirstOrThrow();
  const settled = await db.selectFrom('transactions').select(['id', 'amount_msat', 'fee_msat', 'type']).where('state', '=', 'settled').orderBy('id').execute();
  return {
    deposits: new Map(deposits.map((d) => [d.id.toString(), { confirmed: d.confirmed_msat, reserved: d.reserved_msat }])),
    journalEntries: Number(journal.n),
    journalMaxId: journal.max_id,
    settled: settled.map((t) => `${t.id}:${t.type}:${t.amount_msat}:${t.fee_msat}`),
  };
}

/** Each deposit whose cached columns differ from its journal sums or break confirmed ≥ reserved ≥ 0. */
export async function journalMismatches(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('deposits')
    .leftJoin('journal_entries', 'journal_entries.deposit_id', 'deposits.id')
    .groupBy(['deposits.id', 'deposits.confirmed_msat', 'deposits.reserved_msat'])
    .select([
      'deposits.id as id',
      'deposits.confirmed_msat as confirmed',
      'deposits.reserved_msat as reserved',
      sql<bigint>`coalesce(sum(journal_entries.confirmed_delta_msat), 0)::bigint`.as('journal_confirmed'),
      sql<bigint>`coalesce(sum(journal_entries.reserved_delta_msat), 0)::bigint`.as('journal_reserved'),
    ])
    .execute();
  const bad: string[] = [];
  for (const r of rows) {
    if (r.confirmed !== r.journal_confirmed || r.reserved !== r.journal_reserved || r.reserved < 0n || r.confirmed < r.reserved) {
      bad.push(`deposit ${r.id}: confirmed ${r.confirmed} (journal ${r.journal_confirmed}), reserved ${r.reserved} (journal ${r.journal_reserved})`);
    }
  }
  return bad;
}

/**
 * Journal entries written after a snapshot that are not a reservation released in full for a
 * payment that failed: anything else means a generated input moved money.
 */
export async function journalChangesSince(db: Db, snapshot: MoneySnapshot): Promise<{ moved: string[]; failedPayments: number }> {
  const entries = await db
    .selectFrom('journal_entries')
    .leftJoin('transactions', 'transactions.id', 'journal_entries.transaction_id')
    .select([
      'journal_entries.id as id',
      'journal_entries.kind as kind',
      'journal_entries.transaction_id as tx',
      'journal_entries.confirmed_delta_msat as confirmed',
      'journal_entries.reserved_delta_msat as reserved',
      'transactions.state as state',
      'transactions.type as type',
    ])
    .where('journal_entries.id', '>', snapshot.journalMaxId)
    .orderBy('journal_entries.id')
    .execute();
  const byTx = new Map<string, { reserved: bigint; confirmed: bigint; kinds: string[]; state: string | null; type: string | null }>();
  const moved: string[] = [];
  for (const e of entries) {
    if (e.tx === null) {
      moved.push(`journal entry ${e.id} (${e.kind}) has no transaction`);
      continue;
    }
    const t = byTx.get(e.tx.toString()) ?? { reserved: 0n, confirmed: 0n, kinds: [], state: e.state, type: e.type };
    t.reserved += e.reserved;
    t.confirmed += e.confirmed;
    t.kinds.push(e.kind);
    byTx.set(e.tx.toString(), t);
  }
  for (const [tx, t] of byTx) {
    const onlyHolds = t.kinds.every((k) => k === 'reserve' || k === 'release');
    if (!onlyHolds || t.reserved !== 0n || t.confirmed !== 0n || t.state !== 'failed' || t.type !== 'outgoing') {
      moved.push(`transaction ${tx} (${t.type} ${t.state}): ${t.kinds.join(',')} confirmed ${t.confirmed} reserved ${t.reserved}`);
    }
  }
  return { moved, failedPayments: byTx.size };
}

/** A short, printable description of a value for failure messages. */
export function brief(value: unknown, max = 600): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 200 ? `${v.slice(0, 120)}…(${v.length} chars)` : v));
  return text === undefined ? String(value) : text.length > max ? `${text.slice(0, max)}…` : text;
}
