import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  accountSchema,
  allocationSchema,
  ApiError,
  auditSchema,
  balanceHistorySchema,
  BridgeApi,
  connectionsSchema,
  getPublic,
  historySchema,
  incidentsSchema,
  infoSchema,
  lockSchema,
  oneConnectionSchema,
  policySchema,
  registeredSchema,
  restoreSchema,
  type Account,
  type ConnectionInfo,
  type Policy,
  type RestoreOutcome,
  type Tx,
} from './api.ts';
import { balanceChart, figure, shareChart } from './charts.ts';
import { byId, fill, h, say, show, table } from './dom.ts';
import { parseSats, percent, sats, shortKey, time } from './format.ts';
import { qrImage } from './qr.ts';
import { hasNip07, keySigner, loadSecret, nip07Signer, npub, nsec, parseSecretKey, storeSecret, type Signer } from './signer.ts';
import { DEFAULT_FEE_LIMIT, depositOpenTemplate, grantTemplate, lockTemplate, nowSeconds, type GrantTerms, type Renewal } from './statements.ts';

/** The account page: signs in, shows the user's deposits, manages connections, lock and policy. */

const status = byId('status');
const errorBox = byId('error');
let api: BridgeApi | undefined;
/** The signed-in user's signer, for statements (grants, locks); `api` signs the requests. */
let currentSigner: Signer | undefined;
let account: Account | undefined;
let connections: ConnectionInfo[] = [];
let editing: ConnectionInfo | undefined;
let servedMethods: string[] = [];

function fail(error: unknown): void {
  const message = error instanceof ApiError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
  say(errorBox, message, 'error');
}

/** Runs a user action: clears the last error, reports a failure, keeps the button from double use. */
function action(button: HTMLButtonElement | null, work: () => Promise<void>): void {
  say(errorBox, '');
  if (button) button.disabled = true;
  work()
    .catch(fail)
    .finally(() => {
      if (button) button.disabled = false;
    });
}

// ---- sign in ---------------------------------------------------------------------------

async function signIn(signer: Signer): Promise<void> {
  currentSigner = signer;
  api = new BridgeApi(signer);
  byId('who').textContent = npub(signer.pubkey);
  byId('who').title = signer.pubkey;
  show(byId('signin'), false);
  show(byId('account'), true);
  say(status, `Signed in (${signer.via === 'nip07' ? 'browser signer' : signer.via === 'credential' ? 'key from the password manager' : 'key'}).`, 'ok');
  await refreshAll();
}

byId('signin-nip07', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    if (!hasNip07()) throw new Error('No NIP-07 browser signer found (window.nostr). Install one, or use a key.');
    await signIn(await nip07Signer());
  }),
);

byId('signin-stored', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const stored = await loadSecret('npub1');
    const secret = stored ? parseSecretKey(stored.secret) : null;
    if (!secret) throw new Error('No key is saved in this browser (or the browser cannot keep one).');
    await signIn(keySigner(secret, 'credential'));
  }),
);

byId('signin-new', HTMLButtonElement).addEventListener('click', () => {
  const secret = generateSecretKey();
  byId('signin-key', HTMLInputElement).value = nsec(secret);
  const note = byId('new-key-note');
  note.textContent = `A new key was made for ${npub(getPublicKey(secret))}. Keep it: it owns your deposits. Sign in with it to continue.`;
  show(note, true);
});

byId('signin-key-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  action(null, async () => {
    const secret = parseSecretKey(byId('signin-key', HTMLInputElement).value);
    if (!secret) throw new Error('That is not a secret key: expected nsec1… or 64 hex characters.');
    byId('signin-key', HTMLInputElement).value = '';
    const remember = byId('signin-remember', HTMLInputElement).checked;
    await signIn(keySigner(secret, 'key'));
    if (remember) {
      // Not awaited before signing in: the browser may ask the user whether to save it.
      void storeSecret(npub(getPublicKey(secret)), nsec(secret), 'deposit-bridge key').then((saved) => {
        if (!saved) say(status, 'Signed in. This browser did not save the key; keep it yourself.');
      });
    }
  });
});

byId('signout', HTMLButtonElement).addEventListener('click', () => {
  api = undefined;
  currentSigner = undefined;
  location.reload();
});

byId('refresh', HTMLButtonElement).addEventListener('click', (e) => action(e.currentTarget as HTMLButtonElement, refreshAll));

// ---- loading ---------------------------------------------------------------------------

function need(): BridgeApi {
  if (!api) throw new Error('sign in first');
  return api;
}

/** Loads every panel; a panel that fails says so in place and the others still show. */
async function refreshAll(): Promise<void> {
  const panels: [string, () => Promise<void>][] = [
    ['operators', loadAccount],
    ['allocation', loadAllocation],
    ['policy-note', loadPolicy],
    ['balance-history', loadBalanceHistory],
    ['connections', loadConnections],
    ['history', loadHistory],
    ['audit', loadAudit],
    ['incidents', loadIncidents],
  ];
  await Promise.all(
    panels.map(async ([id, load]) => {
      try {
        await load();
      } catch (error) {
        const el = byId(id);
        fill(el, h('p', { class: 'panel-error' }, `Could not load: ${error instanceof Error ? error.message : String(error)}`));
      }
    }),
  );
  document.body.dataset.loaded = String(Date.now());
}

async function loadAccount(): Promise<void> {
  const a = await need().call('GET', '/api/account', accountSchema);
  account = a;
  fill(
    byId('totals'),
    h('dt', {}, 'Available'),
    h('dd', { id: 'total-available' }, sats(a.totals.available_msat)),
    h('dt', {}, 'Held for payments in flight'),
    h('dd', {}, sats(a.totals.reserved_msat)),
    h('dt', {}, 'Open invoices'),
    h('dd', {}, sats(a.totals.open_invoices_msat)),
  );
  byId('lock-state').textContent = a.locked
    ? `Locked since ${time(a.lock_changed_at)}: no payment leaves any of your deposits.`
    : a.known
      ? 'Not locked: your connections may pay within their limits.'
      : 'No deposits yet: create a connection to open them.';
  byId('lock-state').dataset.locked = String(a.locked);
  byId('lock-toggle').textContent = a.locked ? 'Unlock payments' : 'Lock all payments';
  byId('lock-toggle', HTMLButtonElement).disabled = !a.known;
  fill(
    byId('operators'),
    table(
      ['Operator', 'Balance', 'Held', 'Signed by the vault', 'Score', 'Why', 'Reachable', 'Fees'],
      a.operators,
      (o) => [
        o.name,
        sats(o.available_msat),
        sats(o.reserved_msat),
        o.vault_balance_msat === null ? '—' : sats(o.vault_balance_msat),
        o.score.toFixed(2),
        h('ul', { class: 'reasons' }, ...o.score_reasons.map((r) => h('li', {}, r))),
        o.available ? 'yes' : 'no',
        o.fees
          ? `routing ${sats(o.fees.routing_base_msat)} + ${o.fees.routing_ppm} ppm; maintenance ${sats(o.fees.maintenance_unit_msat)} + ${o.fees.maintenance_rate_ppm} ppm per ${o.fees.maintenance_period_blocks} blocks`
          : '—',
      ],
      'No deposits yet.',
    ),
  );
  fill(
    byId('pending'),
    table(['Created', 'Type', 'State', 'Amount', 'Fee reserve', 'Connection'], a.pending, (t) => [time(t.created_at), t.type, t.state, sats(t.amount_msat), sats(t.fee_reserve_msat), t.connection_name ?? '—'], 'Nothing in flight.'),
  );
}

async function loadAllocation(): Promise<void> {
  const target = byId('allocation');
  let allocation;
  try {
    allocation = await need().call('GET', '/api/allocation', allocationSchema);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === 'NOT_FOUND') {
      fill(target, h('p', { class: 'empty' }, 'This bridge does not report allocation targets yet.'));
      return;
    }
    throw error;
  }
  const relaxed =
    allocation.relaxed === 'none'
      ? null
      : allocation.relaxed === 'share-cap'
        ? 'Too few operators to keep every share under your cap: the cap was relaxed.'
        : 'Too few trusted operators: lower score tiers were used.';
  if (allocation.operators.length === 0) {
    fill(target, h('p', { class: 'empty' }, 'No operator holds or is meant to hold your money yet.'));
    return;
  }
  fill(
    target,
    h('p', {}, `Total ${sats(allocation.total_msat)}.`),
    relaxed && h('p', { class: 'note' }, relaxed),
    figure(
      shareChart(allocation.operators.map((o) => ({ name: o.name, targetPpm: o.target_share_ppm, actualPpm: o.actual_share_ppm }))),
      table(
        ['Operator', 'Score', 'Balance', 'Target', 'Cap', 'Actual share', 'Target share'],
        allocation.operators,
        (o) => [o.name, o.score.toFixed(2), sats(o.balance_msat), sats(o.target_msat), o.cap_msat === null ? '—' : sats(o.cap_msat), percent(o.actual_share_ppm), percent(o.target_share_ppm)],
        'No operators.',
      ),
    ),
  );
}

let policy: Policy | undefined;

async function loadPolicy(): Promise<void> {
  const note = byId('policy-note');
  const form = byId('policy-form', HTMLFormElement);
  try {
    policy = await need().call('GET', '/api/policy', policySchema);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === 'NOT_FOUND') {
      show(form, false);
      note.textContent = 'This bridge does not offer allocation policies yet.';
      return;
    }
    throw error;
  }
  show(form, true);
  note.textContent = '';
  byId('policy-max-share', HTMLInputElement).value = String(policy.max_share_ppm / 10_000);
  byId('policy-test-amount', HTMLInputElement).value = (BigInt(policy.test_amount_msat) / 1000n).toString();
  byId('policy-trusted', HTMLInputElement).value = String(Math.round(policy.trusted_score * 1000) / 10);
  byId('policy-min', HTMLInputElement).value = String(Math.round(policy.min_score * 1000) / 10);
  byId('policy-exponent', HTMLInputElement).value = String(policy.exponent);
}

byId('policy-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  action(null, async () => {
    const num = (id: string, what: string) => {
      const v = Number(byId(id, HTMLInputElement).value.trim());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${what} must be a number`);
      return v;
    };
    const testMsat = parseSats(byId('policy-test-amount', HTMLInputElement).value);
    if (testMsat === null) throw new Error('The test amount must be a whole number of sats');
    const body = {
      max_share_ppm: Math.round(num('policy-max-share', 'The largest share') * 10_000),
      test_amount_msat: testMsat.toString(),
      trusted_score: num('policy-trusted', 'The trusted score') / 100,
      min_score: num('policy-min', 'The lowest score') / 100,
      exponent: num('policy-exponent', 'The exponent'),
    };
    policy = await need().call('PUT', '/api/policy', policySchema, body);
    say(status, 'Policy saved.', 'ok');
    await Promise.all([loadPolicy(), loadAllocation()]);
  });
});

async function loadBalanceHistory(): Promise<void> {
  const { points } = await need().call('GET', '/api/account/balance-history?days=30', balanceHistorySchema);
  const line = points.map((p) => ({ at: p.at, value: BigInt(p.balance_msat) }));
  fill(byId('balance-history'), figure(balanceChart(line), table(['Time', 'Balance'], points, (p) => [time(p.at), sats(p.balance_msat)], 'No balance yet.')));
}

const KIND_TEXT: Partial<Record<Tx['kind'], string>> = {
  maintenance_fee: 'maintenance fee',
  transfer: 'moved between your deposits',
  deposit_moved: 'moved by the operator',
};

async function loadHistory(): Promise<void> {
  const history = await need().call('GET', '/api/account/transactions?limit=200', historySchema);
  fill(
    byId('fee-totals'),
    h('dt', {}, 'Routing fees paid'),
    h('dd', { id: 'routing-fees' }, sats(history.fees.routing_msat)),
    h('dt', {}, 'Maintenance fees paid'),
    h('dd', { id: 'maintenance-fees' }, sats(history.fees.maintenance_msat)),
  );
  const opName = (pk: string) => account?.operators.find((o) => o.node_pubkey === pk)?.name ?? shortKey(pk);
  fill(
    byId('history'),
    table(
      ['Created', 'Type', 'State', 'Amount', 'Routing fee', 'Connection', 'Operator', 'Description'],
      history.transactions,
      (t: Tx) => [
        time(t.created_at),
        KIND_TEXT[t.kind] ?? (t.type === 'incoming' ? 'received' : 'paid'),
        t.state + (t.failure_reason ? ` (${t.failure_reason})` : ''),
        sats(t.amount_msat),
        t.type === 'outgoing' ? sats(t.routing_fee_msat) : '—',
        t.connection_name ?? '—',
        t.parts.length > 0 ? t.parts.map((p) => `${opName(p.operator_pubkey)} ${sats(p.amount_msat)}`).join(' + ') : opName(t.operator_pubkey),
        t.description ?? '',
      ],
      'No transactions yet.',
    ),
  );
}

async function loadAudit(): Promise<void> {
  const { entries } = await need().call('GET', '/api/audit?limit=100', auditSchema);
  const connName = (pk: string | null) => (pk === null ? '—' : (connections.find((c) => c.pubkey === pk)?.name ?? shortKey(pk)));
  fill(byId('audit'), table(['When', 'Connection', 'Method', 'Refused as', 'Why'], entries, (e) => [time(e.created_at), connName(e.connection_pubkey), e.method ?? '—', e.code, e.message], 'Nothing was refused.'));
}

async function loadIncidents(): Promise<void> {
  const { incidents } = await need().call('GET', '/api/account/incidents?limit=100', incidentsSchema);
  fill(
    byId('incidents'),
    table(
      ['When', 'Operator', 'Kind', 'What happened', 'Your deposit'],
      incidents,
      (i) => [time(i.created_at), i.operator_name ?? shortKey(i.operator_pubkey), i.kind, i.message, i.mine ? 'yes' : 'no'],
      'No incidents at your operators.',
    ),
  );
}

// ---- lock ------------------------------------------------------------------------------

byId('lock-toggle', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const a = account;
    if (!a) throw new Error('load the account first');
    const signer = need();
    const locked = !a.locked;
    // Newest statement wins: date it after the one in force even if the clocks disagree.
    const createdAt = Math.max(nowSeconds(), (a.lock_changed_at ?? 0) + 1);
    const lock = await signerSign(lockTemplate(locked, createdAt));
    const result = await signer.call('POST', '/api/lock', lockSchema, { lock });
    const missed = result.operators.filter((o) => !o.ok);
    say(status, `${result.locked ? 'Locked' : 'Unlocked'}.${missed.length ? ` Not reached: ${missed.map((o) => o.name).join(', ')}; press again to resend.` : ''}`, missed.length ? 'error' : 'ok');
    await Promise.all([loadAccount(), loadAudit()]);
  }),
);

async function signerSign(template: Parameters<Signer['sign']>[0]) {
  if (!currentSigner) throw new Error('sign in first');
  return currentSigner.sign(template);
}

// ---- restore ---------------------------------------------------------------------------

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** One operator's outcome, as a sentence. */
function restoreText(r: RestoreOutcome): string {
  if (!r.ok) return `not restored: ${r.error ?? 'no reason given'}`;
  const change = BigInt(r.balance_change_msat);
  const moved = change === 0n ? 'unchanged' : `${change > 0n ? '+' : ''}${sats(change)} at this bridge`;
  return [
    `restored. Balance ${sats(r.balance_msat ?? '0')} as both channel peers signed it (${moved})`,
    `${count(r.transactions_added, 'transaction', 'transactions')} added, ${r.transactions_known} already known`,
    r.created ? 'deposit recorded again' : '',
  ]
    .filter(Boolean)
    .join('; ')
    .concat('.');
}

function showRestore(outcomes: RestoreOutcome[]): void {
  fill(
    byId('restore-result'),
    h('h3', { id: 'restore-result-h' }, 'What each operator restored'),
    outcomes.length === 0
      ? h('p', { class: 'empty' }, 'This bridge works with no vault operator right now: nothing was restored.')
      : h(
          'ul',
          { class: 'outcomes', 'aria-labelledby': 'restore-result-h' },
          ...outcomes.map((r) => h('li', { 'data-operator': r.name, 'data-ok': String(r.ok) }, h('strong', {}, r.name), ': ', restoreText(r))),
        ),
  );
}

byId('restore', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const result = byId('restore-result');
    // The statement a first connection signs: it opens the same deposits again and makes the bridge their watcher.
    const depositOpen = await signerSign(depositOpenTemplate(nowSeconds()));
    say(status, 'Restoring: asking each vault operator…');
    result.setAttribute('aria-busy', 'true');
    try {
      const { operators } = await need().call('POST', '/api/restore', restoreSchema, { deposit_open: depositOpen });
      showRestore(operators);
      const failed = operators.filter((o) => !o.ok);
      say(
        status,
        failed.length === 0
          ? `Restored from ${count(operators.length, 'vault operator', 'vault operators')}.`
          : `Restored from ${operators.length - failed.length} of ${operators.length} vault operators; ${failed.map((o) => o.name).join(', ')} not (see why below). Press again to retry.`,
        failed.length === 0 ? 'ok' : 'error',
      );
    } finally {
      result.removeAttribute('aria-busy');
    }
    await refreshAll();
  }),
);

// ---- connections -----------------------------------------------------------------------

const PRESETS: Record<string, string[]> = {
  receive: ['get_info', 'get_balance', 'make_invoice', 'lookup_invoice', 'list_transactions', 'receive', 'notifications'],
  read: ['get_info', 'get_balance', 'get_budget', 'lookup_invoice', 'list_transactions'],
};

function optionalSats(id: string, what: string): bigint | null {
  const text = byId(id, HTMLInputElement).value.trim();
  if (text === '') return null;
  const v = parseSats(text);
  if (v === null || v === 0n) throw new Error(`${what} must be a whole number of sats above 0, or empty`);
  return v;
}

function optionalCount(id: string, what: string): number | null {
  const text = byId(id, HTMLInputElement).value.trim();
  if (text === '') return null;
  if (!/^[1-9][0-9]{0,6}$/.test(text)) throw new Error(`${what} must be a whole number above 0, or empty`);
  return Number(text);
}

function renewal(id: string): Renewal {
  const v = byId(id, HTMLSelectElement).value;
  if (v === 'daily' || v === 'weekly' || v === 'monthly' || v === 'yearly' || v === 'never') return v;
  throw new Error('choose a renewal period');
}

async function ensureServedMethods(): Promise<string[]> {
  if (servedMethods.length === 0) servedMethods = (await getPublic('/api/info', infoSchema)).methods;
  return servedMethods;
}

byId('create-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  const button = byId('create-form').querySelector('button[type=submit]');
  action(button instanceof HTMLButtonElement ? button : null, async () => {
    const served = await ensureServedMethods();
    const kind = byId('c-kind', HTMLSelectElement).value;
    const preset = PRESETS[kind];
    const methods = preset ? preset.filter((m) => served.includes(m)) : served;
    const budget = optionalSats('c-budget', 'The budget');
    const perHour = optionalCount('c-per-hour', 'Payments an hour');
    // The connection's secret is made here and shown once; the bridge learns only its public key.
    const secret = generateSecretKey();
    const terms: GrantTerms = {
      connectionPubkey: getPublicKey(secret),
      name: byId('c-name', HTMLInputElement).value.trim(),
      methods,
      budget: budget === null ? null : { amountMsat: budget, renewal: renewal('c-renewal') },
      maxAmountMsat: optionalSats('c-max', 'The largest payment'),
      feeLimit: DEFAULT_FEE_LIMIT,
      expiresAt: null,
      vaultOperators: null,
      velocity: perHour === null ? null : { paymentsPerHour: perHour, amountMsatPerHour: null },
      revoked: false,
    };
    const now = nowSeconds();
    const grant = await signerSign(grantTemplate(terms, now));
    const depositOpen = await signerSign(depositOpenTemplate(now));
    const registered = await need().call('POST', '/api/connections', registeredSchema, { grant, deposit_open: depositOpen });
    const uri = new URL(`nostr+walletconnect://${registered.wallet_service_pubkey}`);
    for (const relay of registered.relays) uri.searchParams.append('relay', relay);
    uri.searchParams.set('secret', bytesToHex(secret));
    secret.fill(0);
    const text = byId('c-format', HTMLSelectElement).value === 'btcpay' ? `type=nwc;key=${uri.toString()}` : uri.toString();
    byId('created-uri', HTMLTextAreaElement).value = text;
    fill(byId('created-qr'), await qrImage(text, `QR code of the connection ${terms.name}`));
    show(byId('created'), true);
    byId('created').focus();
    byId('create-form', HTMLFormElement).reset();
    say(status, `Connection ${terms.name} created.`, 'ok');
    await Promise.all([loadAccount(), loadConnections()]);
  });
});

byId('created-done', HTMLButtonElement).addEventListener('click', () => {
  byId('created-uri', HTMLTextAreaElement).value = '';
  fill(byId('created-qr'));
  show(byId('created'), false);
});

function limitsText(c: ConnectionInfo): string {
  const parts: string[] = [];
  if (c.destination) parts.push(`pays only ${c.destination.type === 'keysend' ? `node ${shortKey(c.destination.node)}` : c.destination.address}`);
  if (c.budget) parts.push(`budget ${sats(c.budget.used_msat)} used of ${sats(c.budget.amount_msat)} ${c.budget.renewal}`);
  if (c.max_amount_msat !== null) parts.push(`at most ${sats(c.max_amount_msat)} a payment`);
  if (c.velocity?.payments_per_hour != null) parts.push(`${c.velocity.payments_per_hour} payments an hour`);
  if (c.velocity?.amount_msat_per_hour != null) parts.push(`${sats(c.velocity.amount_msat_per_hour)} an hour`);
  if (c.expires_at !== null) parts.push(`until ${time(c.expires_at)}`);
  return parts.length ? parts.join('; ') : 'no limits';
}

/** The connection that lets the bridge rebalance (a grant with `rebalance` naming operators), if any. */
function rebalancingConnection(): ConnectionInfo | undefined {
  return connections.find((c) => !c.revoked && c.methods.includes('rebalance') && (c.vault_operators?.length ?? 0) > 0);
}

function showRebalancing(): void {
  const on = rebalancingConnection();
  const names = (keys: string[]) => keys.map((k) => account?.operators.find((o) => o.node_pubkey === k)?.name ?? shortKey(k)).join(', ');
  byId('rebalancing-state').textContent = on
    ? `On: the bridge may move money between ${names(on.vault_operators ?? [])} towards your targets, paying routing fees within ${sats(on.fee_limit.base_msat)} or ${on.fee_limit.ppm / 10_000} % a move.`
    : 'Off: money stays where it was received or paid from.';
  show(byId('rebalancing-on'), on === undefined);
  show(byId('rebalancing-off'), on !== undefined);
}

byId('rebalancing-on', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const info = await getPublic('/api/info', infoSchema);
    if (info.operators.length < 2) throw new Error('Rebalancing needs at least two operators.');
    // A grant for the bridge itself, not an app: its key is made and forgotten here, so nothing
    // can use it but the rebalancer, and only between the operators it names.
    const throwaway = generateSecretKey();
    const terms: GrantTerms = {
      connectionPubkey: getPublicKey(throwaway),
      name: 'automatic rebalancing',
      methods: ['rebalance'],
      budget: null,
      maxAmountMsat: null,
      feeLimit: DEFAULT_FEE_LIMIT,
      expiresAt: null,
      vaultOperators: info.operators.map((o) => o.node_pubkey),
      velocity: null,
      revoked: false,
    };
    throwaway.fill(0);
    const now = nowSeconds();
    const grant = await signerSign(grantTemplate(terms, now));
    const depositOpen = await signerSign(depositOpenTemplate(now));
    await need().call('POST', '/api/connections', registeredSchema, { grant, deposit_open: depositOpen });
    say(status, 'Automatic rebalancing is on.', 'ok');
    await loadConnections();
  }),
);

byId('rebalancing-off', HTMLButtonElement).addEventListener('click', (e) =>
  action(e.currentTarget as HTMLButtonElement, async () => {
    const c = rebalancingConnection();
    if (!c) return;
    const grant = await signerSign(grantTemplate({ ...termsOf(c), revoked: true }, Math.max(nowSeconds(), c.grant_created_at + 1)));
    await need().call('POST', `/api/account/connections/${c.pubkey}/revoke`, oneConnectionSchema, { grant });
    say(status, 'Automatic rebalancing is off.', 'ok');
    await loadConnections();
  }),
);

async function loadConnections(): Promise<void> {
  connections = (await need().call('GET', '/api/account/connections', connectionsSchema)).connections;
  showRebalancing();
  fill(
    byId('connections'),
    table(
      ['Name', 'Key', 'Allowed', 'Limits', 'Last used', 'State', 'Actions'],
      connections,
      (c) => [
        c.name || '(no name)',
        h('code', { title: c.pubkey }, shortKey(c.pubkey)),
        c.methods.join(', '),
        limitsText(c),
        time(c.last_used_at),
        c.revoked ? 'revoked' : 'active',
        c.revoked ? '' : connectionActions(c),
      ],
      'No connections yet.',
    ),
  );
}

function connectionActions(c: ConnectionInfo): HTMLElement {
  const label = c.name || shortKey(c.pubkey);
  const edit = h('button', { type: 'button', 'data-action': 'edit', 'aria-label': `Edit limits of ${label}` }, 'Edit limits');
  const revoke = h('button', { type: 'button', 'data-action': 'revoke', 'aria-label': `Revoke ${label}` }, 'Revoke');
  const box = h('div', { class: 'actions', 'data-connection': c.pubkey }, edit, revoke);
  edit.addEventListener('click', () => openEdit(c));
  revoke.addEventListener('click', () => {
    // A second, explicit step instead of a native dialog.
    const sure = h('button', { type: 'button', 'data-action': 'confirm-revoke', class: 'danger' }, `Yes, revoke ${label}`);
    const keep = h('button', { type: 'button', 'data-action': 'keep' }, 'Keep it');
    fill(box, h('span', {}, 'Apps using it stop working at once. '), sure, keep);
    sure.focus();
    keep.addEventListener('click', () => void loadConnections().catch(fail));
    sure.addEventListener('click', () =>
      action(sure, async () => {
        const grant = await signerSign(grantTemplate({ ...termsOf(c), revoked: true }, Math.max(nowSeconds(), c.grant_created_at + 1)));
        await need().call('POST', `/api/account/connections/${c.pubkey}/revoke`, oneConnectionSchema, { grant });
        say(status, `Connection ${label} revoked.`, 'ok');
        await loadConnections();
      }),
    );
  });
  return box;
}

/** The terms of a listed connection, as its grant in force has them. */
function termsOf(c: ConnectionInfo): GrantTerms {
  return {
    connectionPubkey: c.pubkey,
    name: c.name,
    methods: c.methods,
    budget: c.budget ? { amountMsat: BigInt(c.budget.amount_msat), renewal: c.budget.renewal } : null,
    maxAmountMsat: c.max_amount_msat === null ? null : BigInt(c.max_amount_msat),
    feeLimit: { baseMsat: BigInt(c.fee_limit.base_msat), ppm: c.fee_limit.ppm },
    expiresAt: c.expires_at,
    vaultOperators: c.vault_operators,
    velocity: c.velocity ? { paymentsPerHour: c.velocity.payments_per_hour, amountMsatPerHour: c.velocity.amount_msat_per_hour === null ? null : BigInt(c.velocity.amount_msat_per_hour) } : null,
    ...(c.destination ? { destination: c.destination } : {}),
    revoked: false,
  };
}

function openEdit(c: ConnectionInfo): void {
  editing = c;
  byId('edit-legend').textContent = `Edit limits of ${c.name || shortKey(c.pubkey)}`;
  byId('e-budget', HTMLInputElement).value = c.budget ? (BigInt(c.budget.amount_msat) / 1000n).toString() : '';
  byId('e-renewal', HTMLSelectElement).value = c.budget?.renewal ?? 'monthly';
  byId('e-max', HTMLInputElement).value = c.max_amount_msat === null ? '' : (BigInt(c.max_amount_msat) / 1000n).toString();
  byId('e-per-hour', HTMLInputElement).value = c.velocity?.payments_per_hour == null ? '' : String(c.velocity.payments_per_hour);
  show(byId('edit-form'), true);
  byId('e-budget').focus();
}

byId('edit-cancel', HTMLButtonElement).addEventListener('click', () => {
  editing = undefined;
  show(byId('edit-form'), false);
});

byId('edit-form', HTMLFormElement).addEventListener('submit', (e) => {
  e.preventDefault();
  action(null, async () => {
    const c = editing;
    if (!c) throw new Error('choose a connection to edit');
    const budget = optionalSats('e-budget', 'The budget');
    const perHour = optionalCount('e-per-hour', 'Payments an hour');
    const old = termsOf(c);
    const terms: GrantTerms = {
      ...old,
      budget: budget === null ? null : { amountMsat: budget, renewal: renewal('e-renewal') },
      maxAmountMsat: optionalSats('e-max', 'The largest payment'),
      velocity: perHour === null && old.velocity?.amountMsatPerHour == null ? null : { paymentsPerHour: perHour, amountMsatPerHour: old.velocity?.amountMsatPerHour ?? null },
    };
    // A newer grant for the same connection key replaces the old one at the bridge and the vaults.
    const grant = await signerSign(grantTemplate(terms, Math.max(nowSeconds(), c.grant_created_at + 1)));
    await need().call('PUT', `/api/account/connections/${c.pubkey}`, oneConnectionSchema, { grant });
    editing = undefined;
    show(byId('edit-form'), false);
    say(status, `New limits of ${c.name || shortKey(c.pubkey)} saved.`, 'ok');
    await loadConnections();
  });
});
