/**
 * Vault operators added or removed while the bridge runs (docs/deploy.md, "Vaults file"): the
 * vaults file is re-read on SIGHUP and when it changes on disk, and the running bridge takes the
 * new set: a new operator is connected and followed, a removed one gets nothing new but keeps
 * what is already there. An invalid file changes nothing.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ensureDeposits } from '../deposits/connections.ts';
import type { WalletContext } from '../deposits/context.ts';
import type { OperatorDirectory, OperatorEntry } from '../deposits/operators.ts';
import { nostrEventSchema } from '../protocol/nostr-event.ts';
import { operatorProtocol, parseVaultsFile, type VaultsFile } from '../vault-client/vaults-file.ts';

/**
 * The directory's entries for a vaults file's operators (the mapping `npm start` uses too): the
 * v0 operators only. A v1 operator lets whoever holds the deposit key spend and the bridge holds
 * none, so it never opens deposits, makes invoices or routes payments there (docs/vault-api-v1.md).
 */
export function operatorEntriesOf(file: VaultsFile): OperatorEntry[] {
  return file.operators.filter((o) => operatorProtocol(o) === 'v0').map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey }));
}

/** A v1 operator of the vaults file: only listed (GET /api/info `v1_operators`), for the owner's own tools. */
export interface V1OperatorListing {
  name: string;
  url: string;
  /** The file's pin, passed on so the owner's tools refuse another node at that URL. */
  nodePubkey?: string;
}

/** The vaults file's v1 operators, in file order. */
export function v1OperatorsOf(file: VaultsFile): V1OperatorListing[] {
  return file.operators.filter((o) => operatorProtocol(o) === 'v1').map((o) => ({ name: o.name, url: o.url, ...(o.node_pubkey ? { nodePubkey: o.node_pubkey } : {}) }));
}

/** One line per v1 operator, saying why the bridge does not use it. */
export function logV1Operators(logger: Logger, list: readonly V1OperatorListing[]): void {
  for (const op of list) {
    logger.info(
      { operator: op.name, url: op.url, protocol: 'v1' },
      "v1 vault operator listed for the owner's own tools only: it trusts the deposit key for every call and the bridge holds none, so no deposits, invoices or payments go there (docs/vault-api-v1.md)",
    );
  }
}

/** What one reload did. `applied` with nothing added or removed: the file named the same operators. */
export type VaultsReload =
  | { status: 'applied'; added: string[]; removed: string[]; auditors: number }
  /** The file could not be read or does not check: the operators in use are kept. */
  | { status: 'invalid'; reason: string }
  /** The bridge failed while applying it (its log says why); what was applied stays. */
  | { status: 'failed'; reason: string };

export interface VaultsReloadTarget {
  operators: Pick<OperatorDirectory, 'reload'>;
  /** Takes the file's auditors in place of those read before (used from the next score refresh). */
  setAuditors(auditors: VaultsFile['auditors']): void;
  /** Takes the file's v1 operators in place of those listed before (GET /api/info `v1_operators`). */
  setV1Operators?(list: V1OperatorListing[]): void;
  logger: Logger;
}

/**
 * Reads the vaults file and applies it. Reloads run one at a time, in the order asked (a watch
 * event and a SIGHUP at once apply the file twice, the second time changing nothing).
 */
export class VaultsReloader {
  readonly #file: string;
  readonly #target: VaultsReloadTarget;
  #last: Promise<unknown> = Promise.resolve();

  constructor(file: string, target: VaultsReloadTarget) {
    this.#file = file;
    this.#target = target;
  }

  reload(): Promise<VaultsReload> {
    const next = this.#last.then(() => this.#reloadOnce());
    this.#last = next;
    return next;
  }

  /** Resolves once no reload is running (before the bridge stops what a reload would use). */
  async idle(): Promise<void> {
    await this.#last.catch(() => undefined);
  }

  async #reloadOnce(): Promise<VaultsReload> {
    const { logger } = this.#target;
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      return this.#invalid(`cannot read vaults file ${this.#file}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const parsed = parseVaultsFile(text, `vaults file ${this.#file}`);
    if (!parsed.ok) return this.#invalid(parsed.error.message);
    try {
      const change = await this.#target.operators.reload(operatorEntriesOf(parsed.value));
      this.#target.setAuditors(parsed.value.auditors);
      const v1 = v1OperatorsOf(parsed.value);
      this.#target.setV1Operators?.(v1);
      logV1Operators(logger, v1);
      for (const entry of change.added) logger.info({ operator: entry.name, url: entry.url }, 'vault operator added from the vaults file');
      // The directory logs each removal with what happens to the money there.
      const outcome = { status: 'applied' as const, added: change.added.map((e) => e.name), removed: change.removed.map((r) => r.entry.name), auditors: parsed.value.auditors.length };
      logger.info({ file: this.#file, added: outcome.added, removed: outcome.removed, auditors: outcome.auditors }, 'vaults file reloaded');
      return outcome;
    } catch (error) {
      logger.error({ file: this.#file, err: error }, 'could not apply the vaults file');
      return { status: 'failed', reason: error instanceof Error ? error.message : String(error) };
    }
  }

  #invalid(reason: string): VaultsReload {
    this.#target.logger.warn({ file: this.#file, reason }, 'vaults file not reloaded: keeping the operators in use');
    return { status: 'invalid', reason };
  }
}

/** How long the vaults file must be quiet before a change is applied (editors write in steps). */
export const VAULTS_WATCH_DEBOUNCE_MS = 500;

/**
 * Calls `onChange` once the vaults file may have changed and then stayed quiet for `debounceMs`.
 * The directory is watched, not the file: editors and deploy tools often write a new file and
 * rename it over the old one (Kubernetes swaps a `..data` link), which a watch on the old file
 * would miss. A watch that cannot be set up is logged; SIGHUP still reloads.
 */
export function watchVaultsFile(file: string, onChange: () => void, options: { debounceMs?: number; logger: Logger }): { close(): void } {
  const base = path.basename(file);
  const debounceMs = options.debounceMs ?? VAULTS_WATCH_DEBOUNCE_MS;
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
      if (name !== null && name !== base && !name.startsWith('..')) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', (err) => options.logger.warn({ file, err }, 'vaults file watch failed; SIGHUP still reloads it'));
  } catch (err) {
    options.logger.warn({ file, err }, 'cannot watch the vaults file; SIGHUP reloads it');
  }
  return {
    close: () => {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}

/**
 * Opens a deposit at an operator connected after the start (added to the vaults file, or reached
 * late) for every user who has none there, with the deposit-open statement each user signed and
 * the bridge keeps, so new money can go there too. One vault call per such user, one at a time;
 * stops when the bridge stops or the operator is removed again. A failure is logged per user and
 * tried again the next time the operator connects (or when the user registers a connection).
 */
export async function openDepositsAtOperator(ctx: WalletContext, nodePubkey: string): Promise<{ users: number; opened: number }> {
  const users = await ctx.db
    .selectFrom('users')
    .select(['pubkey', 'deposit_open_event'])
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('deposits').select('deposits.id').whereRef('deposits.user_pubkey', '=', 'users.pubkey').where('deposits.operator_pubkey', '=', nodePubkey))),
    )
    .orderBy('pubkey')
    .execute();
  let opened = 0;
  for (const user of users) {
    const op = ctx.operators.get(nodePubkey);
    if (ctx.stopping.aborted || !op || op.retired) break;
    const open = nostrEventSchema.safeParse(user.deposit_open_event);
    if (!open.success) continue;
    const before = await countDeposits(ctx, user.pubkey);
    if ((await ensureDeposits(ctx.db, [op], user.pubkey, open.data, ctx.logger)) > before) opened += 1;
  }
  if (users.length > 0) ctx.logger.info({ operator: ctx.operators.get(nodePubkey)?.name, users: users.length, opened }, 'deposits opened at a newly connected vault operator');
  return { users: users.length, opened };
}

async function countDeposits(ctx: WalletContext, userPubkey: string): Promise<number> {
  const row = await ctx.db.selectFrom('deposits').select((eb) => eb.fn.countAll<bigint>().as('n')).where('user_pubkey', '=', userPubkey).executeTakeFirstOrThrow();
  return Number(row.n);
}
