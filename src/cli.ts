import { Command, InvalidArgumentError, Option } from 'commander';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { nip19 } from 'nostr-tools';
import { z } from 'zod';
import { satToMsat } from './protocol/amounts.ts';
import { budgetRenewalSchema } from './protocol/budget.ts';
import { grantTerms, signGrant, type GrantDestination } from './protocol/grant.ts';
import { bytesToHex, hexToBytes } from './protocol/hex.ts';
import { httpAuthHeader } from './protocol/nip98.ts';
import { parseLightningAddress } from './protocol/payment-target.ts';
import { signDepositLock, signDepositOpen } from './protocol/user-statements.ts';
import { loadConfig } from './config.ts';
import { runDevnet, runMigrations, runReconcile, runService } from './main.ts';
import { exportBackup, importBackup } from './ops/settings-transfer.ts';
import { V1_BALANCE_NOTE, vaultHoldings, type Holding } from './ops/holdings.ts';
import { requestRestore } from './ops/restore.ts';
import { readFileSync, writeFileSync } from 'node:fs';

const program = new Command()
  .name('deposit-bridge')
  .description('A Nostr Wallet Connect service whose money lives in vaults at independent operators.')
  .showHelpAfterError();

function positiveInteger(value: string): bigint {
  if (!/^[1-9][0-9]{0,15}$/.test(value)) throw new InvalidArgumentError('expected a positive whole number');
  return BigInt(value);
}

/** A user key given as 64 hex characters or an nsec. */
function secretKeyArg(value: string): Uint8Array {
  if (/^[0-9a-f]{64}$/i.test(value)) return hexToBytes(value.toLowerCase());
  try {
    const decoded = nip19.decode(value);
    if (decoded.type === 'nsec') return decoded.data;
  } catch {
    // reported below
  }
  throw new InvalidArgumentError('expected a secret key: 64 hex characters or nsec1…');
}

function baseUrl(value: string): string {
  if (!/^https?:\/\/[^\s]+$/.test(value)) throw new InvalidArgumentError('expected an http(s):// URL');
  return value.replace(/\/+$/, '');
}

/** An HTTP error answer from the bridge, with its status and error code. */
class BridgeRefusal extends Error {
  readonly status: number;
  readonly code: string | null;

  constructor(status: number, code: string | null, message: string) {
    super(message);
    this.name = 'BridgeRefusal';
    this.status = status;
    this.code = code;
  }
}

async function fetchJson<S extends z.ZodType>(url: string, schema: S, init?: RequestInit): Promise<z.output<S>> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new Error(`cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${url} answered ${response.status} with a body that is not JSON`);
  }
  if (!response.ok) {
    const error = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).safeParse(json);
    throw new BridgeRefusal(
      response.status,
      error.success ? error.data.error.code : null,
      `${url} answered ${response.status}: ${error.success ? `${error.data.error.code}: ${error.data.error.message}` : text.slice(0, 200)}`,
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new Error(`${url} answered with an unexpected body: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

const bridgeInfoSchema = z.object({
  wallet_service_pubkey: z.string(),
  relays: z.array(z.string()).min(1),
  methods: z.array(z.string()),
  operators: z.array(z.object({ node_pubkey: z.string() })).default([]),
});
const registeredSchema = z.object({ wallet_service_pubkey: z.string(), relays: z.array(z.string()).min(1) });
const devnetInfoSchema = z.object({ network_url: z.string() });

program
  .command('start', { isDefault: true })
  .description('run the bridge (with an embedded database and a local devnet unless configured otherwise)')
  .action(async () => {
    await runService(loadConfig());
  });

program
  .command('migrate')
  .description('run pending database migrations and exit')
  .action(async () => {
    await runMigrations(loadConfig());
  });

program
  .command('reconcile')
  .description('compare every deposit with the balance its vault signed; exit 1 on a difference')
  .action(async () => {
    await runReconcile(loadConfig());
  });

program
  .command('connect')
  .description('create an NWC connection: the secret is made here, the bridge only learns its public key')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .option('--user-key <hex|nsec>', 'your user key (a new one is generated and printed to stderr if omitted)', secretKeyArg)
  .option('--name <name>', 'a name for the connection', '')
  .option('--methods <list>', 'comma-separated NIP-47 methods to allow (default: all the bridge serves)')
  .option('--budget-sat <sat>', 'spending budget per renewal period, in sats', positiveInteger)
  .addOption(new Option('--renewal <period>', 'budget renewal period').choices(budgetRenewalSchema.options))
  .option('--max-amount-sat <sat>', 'largest single payment, in sats', positiveInteger)
  .option('--max-payments-per-hour <n>', 'at most this many payments in any hour', positiveInteger)
  .option('--max-sat-per-hour <sat>', 'at most this much paid in any hour, in sats', positiveInteger)
  .option('--rebalance', "also let the bridge move money between your own deposits at the bridge's current operators (the grant names them)")
  .addOption(new Option('--format <format>', 'how to print the connection: a NWC URI, or the connection string BTCPay Server takes').choices(['uri', 'btcpay']).default('uri'))
  .action(async (opts: {
    url: string;
    userKey?: Uint8Array;
    name: string;
    methods?: string;
    budgetSat?: bigint;
    renewal?: z.infer<typeof budgetRenewalSchema>;
    maxAmountSat?: bigint;
    maxPaymentsPerHour?: bigint;
    maxSatPerHour?: bigint;
    rebalance?: boolean;
    format: 'uri' | 'btcpay';
  }) => {
    if (opts.renewal && opts.budgetSat === undefined) throw new InvalidArgumentError('--renewal needs --budget-sat');
    const info = await fetchJson(`${opts.url}/api/info`, bridgeInfoSchema);
    let userKey = opts.userKey;
    if (!userKey) {
      userKey = generateSecretKey();
      process.stderr.write(`New user key (keep it secret; it owns your deposits): ${nip19.nsecEncode(userKey)}\n`);
      process.stderr.write(`User public key: ${nip19.npubEncode(getPublicKey(userKey))}\n`);
    }
    const methods = opts.methods ? opts.methods.split(',').map((m) => m.trim()).filter(Boolean) : info.methods;
    // Vaults move money between deposits only among operators the grant names (docs/multi-vault.md).
    if (opts.rebalance && info.operators.length === 0) throw new InvalidArgumentError('--rebalance: the bridge lists no vault operators');
    if (opts.rebalance) methods.push('rebalance');
    const connectionSecret = generateSecretKey();
    const grant = signGrant(
      grantTerms(getPublicKey(connectionSecret), methods, {
        name: opts.name,
        ...(opts.rebalance ? { vaultOperators: info.operators.map((o) => o.node_pubkey) } : {}),
        budget: opts.budgetSat === undefined ? null : { amountMsat: satToMsat(opts.budgetSat), renewal: opts.renewal ?? 'monthly' },
        maxAmountMsat: opts.maxAmountSat === undefined ? null : satToMsat(opts.maxAmountSat),
        velocity:
          opts.maxPaymentsPerHour === undefined && opts.maxSatPerHour === undefined
            ? null
            : {
                paymentsPerHour: opts.maxPaymentsPerHour === undefined ? null : Number(opts.maxPaymentsPerHour),
                amountMsatPerHour: opts.maxSatPerHour === undefined ? null : satToMsat(opts.maxSatPerHour),
              },
      }),
      userKey,
    );
    const registered = await signedCall(`${opts.url}/api/connections`, 'POST', userKey, registeredSchema, { grant, deposit_open: signDepositOpen(userKey) });
    const uri = new URL(`nostr+walletconnect://${registered.wallet_service_pubkey}`);
    for (const relay of registered.relays) uri.searchParams.append('relay', relay);
    uri.searchParams.set('secret', bytesToHex(connectionSecret));
    const connection = opts.format === 'btcpay' ? `type=nwc;key=${uri.toString()}` : uri.toString();
    process.stdout.write(`Connection registered (${methods.join(', ')}). Paste this into your ${opts.format === 'btcpay' ? 'BTCPay Server store' : 'NWC wallet'}:\n${connection}\n`);
  });

/** A call to the bridge's API signed (NIP-98) with the user's key. */
async function signedCall<S extends z.ZodType>(url: string, method: 'GET' | 'POST' | 'PUT', userKey: Uint8Array, schema: S, body?: unknown): Promise<z.output<S>> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return fetchJson(url, schema, {
    method,
    headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), authorization: httpAuthHeader(userKey, url, method, text) },
    ...(text !== undefined ? { body: text } : {}),
  });
}

const lockResultSchema = z.object({ locked: z.boolean(), operators: z.array(z.object({ name: z.string(), ok: z.boolean(), error: z.string().optional() })) });

/**
 * Statements (grants, locks) are ordered by their second: one signed within the same second as
 * the statement in force (a revocation right after the connection was made, an unlock right
 * after a lock) is refused as not newer. On that refusal it is signed again, dated a second
 * later each time (the bridge and the vaults accept up to 60 s ahead).
 */
async function postNewerStatement<S extends z.ZodType>(url: string, userKey: Uint8Array, schema: S, bodyAt: (createdAt: number) => unknown): Promise<z.output<S>> {
  const now = Math.floor(Date.now() / 1000);
  for (let ahead = 0; ; ahead++) {
    try {
      return await signedCall(url, 'POST', userKey, schema, bodyAt(now + ahead));
    } catch (error) {
      if (!(error instanceof BridgeRefusal && error.code === 'CONFLICT') || ahead >= 5) throw error;
    }
  }
}

for (const [name, locked] of [
  ['lock', true],
  ['unlock', false],
] as const) {
  program
    .command(name)
    .description(locked ? 'emergency lock: no payment leaves any of your deposits until you unlock' : 'lift the emergency lock')
    .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
    .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
    .action(async (opts: { url: string; userKey: Uint8Array }) => {
      const result = await postNewerStatement(`${opts.url}/api/lock`, opts.userKey, lockResultSchema, (createdAt) => ({ lock: signDepositLock(opts.userKey, locked, createdAt) }));
      for (const op of result.operators) process.stdout.write(`${op.name}: ${op.ok ? (locked ? 'locked' : 'unlocked') : `not reached (${op.error ?? 'unknown'}); run again`}\n`);
      process.stdout.write(`${result.locked ? 'locked' : 'unlocked'}\n`);
    });
}

program
  .command('revoke')
  .description('revoke a connection: the bridge and every vault refuse it from now on')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .requiredOption('--connection <pubkey>', "the connection's public key (hex)")
  .action(async (opts: { url: string; userKey: Uint8Array; connection: string }) => {
    if (!/^[0-9a-f]{64}$/.test(opts.connection)) throw new InvalidArgumentError('--connection must be 64 hex characters');
    await postNewerStatement(`${opts.url}/api/connections`, opts.userKey, z.object({ revoked: z.literal(true) }), (createdAt) => ({
      grant: signGrant(grantTerms(opts.connection, [], { revoked: true }), opts.userKey, createdAt),
      deposit_open: signDepositOpen(opts.userKey),
    }));
    process.stdout.write('revoked\n');
  });

const sweepViewSchema = z.object({
  connection_pubkey: z.string(),
  destination: z.union([z.object({ type: z.literal('keysend'), node: z.string() }), z.object({ type: z.literal('lightning_address'), address: z.string() })]).nullable(),
  keep_max_msat: z.string(),
  min_sweep_msat: z.string(),
  grant_created_at: z.number(),
});
const sweepAnswerSchema = z.object({ sweep: sweepViewSchema.nullable() });

/** At most this many sweeps an hour: the job makes at most one per user each pass (six an hour), so twice that leaves room. */
const SWEEP_PAYMENTS_PER_HOUR = 12;

/** `--to`: a node key (33-byte compressed hex) for keysend, or a lightning address. */
function sweepDestinationArg(value: string): GrantDestination {
  if (/^0[23][0-9a-f]{64}$/i.test(value)) return { type: 'keysend', node: value.toLowerCase() };
  const address = parseLightningAddress(value);
  if (address.ok) return { type: 'lightning_address', address: address.value.address };
  throw new InvalidArgumentError('expected a node public key (66 hex characters) or a lightning address name@host');
}

/** A satoshi amount that may be zero (keep nothing). */
function satArg(value: string): bigint {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value)) throw new InvalidArgumentError('expected a whole number of sats');
  return BigInt(value);
}

program
  .command('sweep')
  .description('keep at most --keep-max sat in your deposits and sweep the rest to your own node (keysend) or lightning address; the bridge gets a connection that can pay only there')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .option('--keep-max <sat>', 'the most to keep in deposits, in sats', satArg)
  .option('--to <node|address>', 'where the rest goes: a node public key (keysend) or a lightning address', sweepDestinationArg)
  .option('--min <sat>', 'sweep only when at least this much is above --keep-max, in sats', positiveInteger, 10_000n)
  .option('--off', 'stop sweeping and revoke the sweep connection')
  .action(async (opts: { url: string; userKey: Uint8Array; keepMax?: bigint; to?: GrantDestination; min: bigint; off?: boolean }) => {
    const url = `${opts.url}/api/sweep`;
    const current = (await signedCall(url, 'GET', opts.userKey, sweepAnswerSchema)).sweep;
    // A revocation must be newer than the grant it revokes, even within the same second.
    const revocation = current
      ? signGrant(grantTerms(current.connection_pubkey, [], { revoked: true }), opts.userKey, Math.max(Math.floor(Date.now() / 1000), current.grant_created_at + 1))
      : undefined;
    if (opts.off) {
      if (opts.keepMax !== undefined || opts.to !== undefined) throw new InvalidArgumentError('--off takes no --keep-max or --to');
      if (!current || !revocation) {
        process.stdout.write('no sweep is set\n');
        return;
      }
      await signedCall(url, 'PUT', opts.userKey, z.object({ sweep: z.null() }), { policy: null, revoke: revocation, deposit_open: signDepositOpen(opts.userKey) });
      process.stdout.write(`sweep off; connection ${current.connection_pubkey} revoked\n`);
      return;
    }
    if (opts.keepMax === undefined || opts.to === undefined) {
      if (opts.keepMax !== undefined || opts.to !== undefined) throw new InvalidArgumentError('give both --keep-max and --to (or --off, or neither to show the sweep)');
      const shown = current?.destination;
      process.stdout.write(
        current && shown
          ? `keep at most ${BigInt(current.keep_max_msat) / 1000n} sat, sweep the rest (at least ${BigInt(current.min_sweep_msat) / 1000n} sat) to ${shown.type === 'keysend' ? shown.node : shown.address}\n`
          : 'no sweep is set\n',
      );
      return;
    }
    // The secret is made here and handed to the bridge, which can use it only as the grant says.
    const connectionSecret = generateSecretKey();
    const method = opts.to.type === 'keysend' ? 'pay_keysend' : 'pay';
    // The velocity cap bounds the routing fees a holder of this secret could waste on needless sweeps.
    const grant = signGrant(
      grantTerms(getPublicKey(connectionSecret), [method], { name: 'sweep', destination: opts.to, velocity: { paymentsPerHour: SWEEP_PAYMENTS_PER_HOUR, amountMsatPerHour: null } }),
      opts.userKey,
    );
    const set = await signedCall(url, 'PUT', opts.userKey, sweepAnswerSchema, {
      grant,
      deposit_open: signDepositOpen(opts.userKey),
      connection_secret: bytesToHex(connectionSecret),
      policy: { keep_max_msat: satToMsat(opts.keepMax).toString(), min_sweep_msat: satToMsat(opts.min).toString() },
      ...(revocation ? { revoke: revocation } : {}),
    });
    const where = opts.to.type === 'keysend' ? `node ${opts.to.node} (keysend)` : opts.to.address;
    process.stdout.write(`sweep set: keep at most ${opts.keepMax} sat, the rest (at least ${opts.min} sat at a time) goes to ${where}\n`);
    if (current) process.stdout.write(`previous sweep connection ${current.connection_pubkey} revoked\n`);
    process.stdout.write(`${set.sweep?.connection_pubkey ?? ''}\n`);
  });

program
  .command('audit')
  .description('your audit log: every refused request, and incidents at your vault operators')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .option('--limit <n>', 'how many entries', '50')
  .action(async (opts: { url: string; userKey: Uint8Array; limit: string }) => {
    const entrySchema = z.object({ created_at: z.number(), method: z.string().nullable(), code: z.string(), message: z.string() });
    const result = await signedCall(`${opts.url}/api/audit?limit=${encodeURIComponent(opts.limit)}`, 'GET', opts.userKey, z.object({ entries: z.array(entrySchema) }));
    for (const e of result.entries) {
      process.stdout.write(`${new Date(e.created_at * 1000).toISOString()}  ${e.method ?? '-'}  ${e.code}  ${e.message}\n`);
    }
  });

const addressSchema = z.object({ name: z.string(), address: z.string(), lnurlp: z.string() });

program
  .command('address [name]')
  .description('your lightning address (name@host): choose or change it (a-z 0-9 - _ .); without a name, show it')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .option('--remove', 'free your lightning address')
  .action(async (name: string | undefined, opts: { url: string; userKey: Uint8Array; remove?: boolean }) => {
    if (opts.remove && name !== undefined) throw new InvalidArgumentError('give a name or --remove, not both');
    const url = `${opts.url}/api/address`;
    const method = opts.remove ? 'DELETE' : name === undefined ? 'GET' : 'PUT';
    const body = method === 'PUT' ? JSON.stringify({ name }) : undefined;
    const init: RequestInit = {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), authorization: httpAuthHeader(opts.userKey, url, method, body) },
      ...(body !== undefined ? { body } : {}),
    };
    if (opts.remove) {
      await fetchJson(url, z.object({ removed: z.literal(true) }), init);
      process.stdout.write('removed\n');
      return;
    }
    const address = await fetchJson(url, addressSchema, init);
    process.stdout.write(`LNURL-pay: ${address.lnurlp}\nLightning address:\n${address.address}\n`);
  });

program
  .command('export')
  .description('back up your settings (connections, lock, policy, lightning address), encrypted to your key (NIP-44)')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .requiredOption('--out <file>', 'where to write the backup (mode 0600)')
  .action(async (opts: { url: string; userKey: Uint8Array; out: string }) => {
    const backup = await exportBackup(opts.url, opts.userKey, Math.floor(Date.now() / 1000));
    writeFileSync(opts.out, JSON.stringify(backup, null, 2) + '\n', { mode: 0o600 });
    process.stdout.write(`settings backup written to ${opts.out} (version ${backup.version}, readable only with your key)\n`);
  });

program
  .command('import <file>')
  .description('register the settings of a backup again at a bridge (after it lost its database, or at another one)')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .action(async (file: string, opts: { url: string; userKey: Uint8Array }) => {
    const steps = await importBackup(opts.url, opts.userKey, readFileSync(file, 'utf8'));
    for (const step of steps) process.stdout.write(`${step.ok ? 'ok    ' : 'failed'} ${step.what}: ${step.detail}\n`);
    const failed = steps.filter((s) => !s.ok).length;
    // What a backup cannot bring back (docs/deploy.md, "Losing the database").
    process.stderr.write('note: balances and history are rebuilt from the vaults by `deposit-bridge restore` (docs/deploy.md)\n');
    process.stdout.write(`${steps.length - failed} of ${steps.length} restored\n`);
    if (failed > 0) process.exitCode = 1;
  });

program
  .command('holdings')
  .description('what each vault operator holds for you, asked with your key and checked against what both channel peers signed (independent of the bridge database)')
  .requiredOption('--url <url>', 'the bridge HTTP URL (for its list of operators)', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .action(async (opts: { url: string; userKey: Uint8Array }) => {
    const holdings = await vaultHoldings(opts.url, opts.userKey);
    const inFlight = (h: Holding) => `${h.reservedMsat ? `, ${h.reservedMsat} msat in flight` : ''}${h.locked ? ', locked' : ''}`;
    for (const h of holdings) {
      const line = h.error
        ? `${h.operator.padEnd(12)} ${h.error}`
        : h.protocol === 'v1'
          ? h.depositId === null
            ? `${h.operator.padEnd(12)} no deposit (none opened)`
            : `${h.operator.padEnd(12)} deposit ${h.depositId}  ${h.statedMsat} msat, ${V1_BALANCE_NOTE}${inFlight(h)}`
          : `${h.operator.padEnd(12)} deposit ${h.depositId ?? '-'}  ${h.signedMsat} msat signed (seq ${h.seq})${inFlight(h)}`;
      // The protocol last, so each line still starts with the operator's name.
      process.stdout.write(`${line}  [${h.protocol}]\n`);
    }
    // Signed and unsigned balances are not added together.
    const v0 = holdings.filter((h) => h.protocol === 'v0');
    const total = v0.reduce((sum, h) => sum + (h.signedMsat ?? 0n), 0n);
    const failed = holdings.filter((h) => h.error).length;
    process.stdout.write(`total ${total} msat at ${v0.filter((h) => !h.error).length} of ${v0.length} operators\n`);
    const v1 = holdings.filter((h) => h.protocol === 'v1');
    if (v1.length > 0) {
      const stated = v1.reduce((sum, h) => sum + (h.statedMsat ?? 0n), 0n);
      process.stdout.write(`v1 total ${stated} msat at ${v1.filter((h) => !h.error).length} of ${v1.length} v1 operators: ${V1_BALANCE_NOTE}\n`);
    }
    if (failed > 0) process.exitCode = 1;
  });

program
  .command('restore')
  .description('rebuild your deposits, balances and history at the bridge from the vault operators (after it lost its database; run `import` first for your connections)')
  .requiredOption('--url <url>', 'the bridge HTTP URL', baseUrl)
  .requiredOption('--user-key <hex|nsec>', 'your user key', secretKeyArg)
  .action(async (opts: { url: string; userKey: Uint8Array }) => {
    const outcomes = await requestRestore(opts.url, opts.userKey);
    for (const o of outcomes) {
      const change = BigInt(o.balance_change_msat);
      const line = o.ok
        ? `${o.name.padEnd(12)} deposit ${o.deposit_id ?? '-'}  ${o.balance_msat} msat signed (${change === 0n ? 'balance unchanged' : `balance ${change > 0n ? '+' : ''}${change} msat`}), ${o.transactions_added} transactions restored, ${o.transactions_known} already known${o.created ? ', deposit created' : ''}`
        : `${o.name.padEnd(12)} failed: ${o.error ?? 'unknown'}`;
      process.stdout.write(line + '\n');
    }
    const failed = outcomes.filter((o) => !o.ok).length;
    process.stdout.write(`restored at ${outcomes.length - failed} of ${outcomes.length} operators\n`);
    // No operator listed restores nothing: not a success.
    if (failed > 0 || outcomes.length === 0) process.exitCode = 1;
  });

const devnet = program.command('devnet').description('the local devnet: relay, vault operators, auditor, payer and payee');

devnet
  .command('run', { isDefault: true })
  .description('run the devnet alone and print the settings for a bridge started separately')
  .action(async () => {
    await runDevnet(loadConfig());
  });

async function networkUrl(url: string): Promise<string> {
  return (await fetchJson(`${url}/api/devnet`, devnetInfoSchema)).network_url.replace(/\/+$/, '');
}

devnet
  .command('pay <bolt11>')
  .description('pay an invoice from the devnet payer (a node outside your vaults); prints the preimage last')
  .requiredOption('--url <url>', 'the bridge (local mode) or devnet URL', baseUrl)
  .option('--amount-msat <msat>', 'amount for an amountless invoice', positiveInteger)
  .action(async (bolt11: string, opts: { url: string; amountMsat?: bigint }) => {
    const paid = await fetchJson(`${await networkUrl(opts.url)}/network/pay`, z.object({ preimage: z.string(), fee_msat: z.string() }), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ invoice: bolt11, ...(opts.amountMsat !== undefined ? { amount_msat: opts.amountMsat.toString() } : {}) }),
    });
    process.stdout.write(`Paid (routing fee ${paid.fee_msat} msat). Preimage:\n${paid.preimage}\n`);
  });

devnet
  .command('invoice <amount_sat>')
  .description('make an invoice at the devnet payee (a node outside your vaults); prints the invoice last')
  .requiredOption('--url <url>', 'the bridge (local mode) or devnet URL', baseUrl)
  .option('--description <text>', 'invoice description', '')
  .action(async (amountSat: string, opts: { url: string; description: string }) => {
    const amount = positiveInteger(amountSat);
    const made = await fetchJson(`${await networkUrl(opts.url)}/network/invoice`, z.object({ invoice: z.string(), payment_hash: z.string() }), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount_msat: satToMsat(amount).toString(), description: opts.description }),
    });
    process.stdout.write(`Invoice for ${amount} sat (payment hash ${made.payment_hash}):\n${made.invoice}\n`);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`deposit-bridge: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
