/**
 * Generated HTTP requests to the bridge's API and to a devnet vault operator's Vault API.
 *
 * Each case is one request with at least one defect (bad or missing NIP-98 auth, a body of the
 * wrong shape, a signed statement that is broken, forged, stale or someone else's, a deposit
 * that is not the caller's), except a small `valid` family of harmless requests (open a deposit
 * for a new key, make an invoice, read the audit log, register a new user, push the grant the
 * vault already has) that shows the endpoints still work amid the garbage. A defect must be
 * answered 4xx with the documented `{"error": {"code", "message"}}` body; nothing may be 5xx.
 */
import fc from 'fast-check';
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { fastFinalizeEvent } from './fast-sign.ts';
import { encryptFor, nip98Event, nip98Header, type ClientKeys } from './harness.ts';

export type Who = 'owner' | 'watcher' | 'stranger';
export type Route = 'connections' | 'bridge-lock' | 'audit' | 'open' | 'invoices' | 'payments' | 'grants' | 'vault-lock';

/** A signed statement to build, and how to break it. */
export interface EventSpec {
  kind: number;
  signer: Who | 'nobody' | 'connection';
  /** Text content, or a value to serialize. */
  content: string | { json: unknown };
  /** Tags; `$conn` stands for a new connection key, `$full` for the funded connection's. */
  tags: string[][];
  /** created_at, seconds from now. */
  createdAt: number;
  defect: EventDefect;
}

export type EventDefect = 'none' | 'sig' | 'id' | 'pubkey' | 'extra-field' | 'missing-field' | 'tag-not-string' | 'fractional-time' | 'negative-time' | 'uppercase-id' | 'content-after-signing';

/** JSON with placeholders filled in when the request is made. */
export type Body =
  | { t: 'text'; text: string }
  | { t: 'json'; value: unknown }
  | { t: 'big'; length: number }
  | { t: 'none' };

export type Auth =
  | { t: 'none' }
  | { t: 'raw'; header: string }
  | { t: 'token'; json: string }
  | { t: 'nip98'; signer: Who; breakage: 'none' | 'url' | 'method' | 'payload' | 'no-payload' | 'stale' | 'future' | 'kind' | 'sig' | 'query' | 'extra-field' };

export interface HttpCase {
  route: Route;
  operator: number;
  /** The deposit in the path: the owner's own at that operator, or another string. */
  id: { t: 'own' } | { t: 'other'; text: string };
  auth: Auth;
  contentType: string | null;
  body: Body;
  /** For GET /api/audit. */
  query: string;
  /** Whether a 2xx is a right answer (the `valid` family); otherwise only 4xx is. */
  valid: boolean;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

const hexChar = fc.constantFrom(...'0123456789abcdef');
const hex = (min: number, max: number) => fc.string({ unit: hexChar, minLength: min, maxLength: max });
const anyUnicode = (maxLength: number) => fc.string({ unit: 'binary', maxLength });

const hugeNumbers = fc.constantFrom(1e21, 2 ** 64, 1e308, -1, -1e308, 0.5, 9007199254740993, 123456789012345678901234567890);
const msatStringDefects = fc.constantFrom('-1', '1e3', '1.5', '', ' 1000', '0x10', '99999999999999999999999', '2100000000000000000001', 'NaN', '01000', '١٠٠٠');
const notAnEvent = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom({}, { kind: 31347 }, { id: 'x', pubkey: 'y', sig: 'z' }, [], 'event', 0, null),
);

/** Grant content fields and a value the statement format refuses (docs/vault-api.md, "Signed statements"). */
const GRANT_FORMAT_DEFECTS: [string, fc.Arbitrary<unknown>][] = [
  ['v', fc.constantFrom(0, 2, '1', null)],
  ['connection', fc.oneof(hex(0, 63), fc.constantFrom('$other', 'ZZ'.repeat(32), null, 5))],
  ['name', fc.oneof(fc.string({ minLength: 201, maxLength: 400 }), fc.integer(), fc.constant(null))],
  ['methods', fc.oneof(fc.constantFrom(['GET_INFO'], 'get_info', [1], [''], ['pay_invoice', 'x'.repeat(65)], null), fc.array(fc.string({ minLength: 1, maxLength: 8 }).filter((m) => !/^[a-z_]+$/.test(m)), { minLength: 1, maxLength: 3 }))],
  ['budget', fc.oneof(msatStringDefects.map((a) => ({ amount_msat: a, renewal: 'monthly' })), hugeNumbers.map((a) => ({ amount_msat: a, renewal: 'daily' })), fc.constantFrom({ amount_msat: '1000', renewal: 'hourly' }, { amount_msat: '1000' }, 'unlimited', 1000))],
  ['max_amount_msat', fc.oneof(msatStringDefects, hugeNumbers, fc.constant(true))],
  ['fee_limit', fc.constantFrom({ base_msat: '10', ppm: 1_000_001 }, { base_msat: '10', ppm: 1.5 }, { base_msat: '10', ppm: -1 }, { base_msat: -10, ppm: 0 }, { base_msat: '99999999999999999999999', ppm: 0 }, null, {})],
  ['expires_at', fc.constantFrom(0, -1, 1.5, 'soon')],
  ['vault_operators', fc.constantFrom(['zz'], 'all', [''], [5], ['02' + '0'.repeat(62) + 'x'])],
  ['velocity', fc.constantFrom({ payments_per_hour: 0, amount_msat_per_hour: null }, { payments_per_hour: -1, amount_msat_per_hour: null }, { payments_per_hour: null, amount_msat_per_hour: '-1' }, { payments_per_hour: 1.5, amount_msat_per_hour: null }, 'fast')],
  ['revoked', fc.constantFrom('no', 0, null)],
  ['extra', fc.jsonValue({ maxDepth: 1 })],
];

/**
 * Grant terms a bridge refuses to register (docs/security.md: only grants in force, for methods
 * it serves), though a vault may store them: a revocation or an expired grant is a statement too.
 */
const GRANT_POLICY_DEFECTS: [string, fc.Arbitrary<unknown>][] = [
  ['methods', fc.constantFrom(['frobnicate'], ['get_info', 'multi_pay_invoice'])],
  ['expires_at', fc.integer({ min: 1, max: Math.floor(Date.now() / 1000) - 10 })],
  ['revoked', fc.constant(true)],
];

/** A grant's content for a new connection key; `defects` fields replaced with invalid values. */
function grantContent(defects: [string, unknown][], methods: string[]): { json: unknown } {
  const content: Record<string, unknown> = {
    v: 1,
    connection: '$conn',
    name: 'fuzz',
    methods,
    budget: null,
    max_amount_msat: null,
    fee_limit: { base_msat: '10000', ppm: 10_000 },
    expires_at: null,
    vault_operators: null,
    revoked: false,
  };
  for (const [field, value] of defects) content[field] = value;
  return { json: content };
}

const GRANT_TAGS = [
  ['d', '$conn'],
  ['p', '$conn'],
];

const eventDefect = fc.constantFrom<EventDefect>('sig', 'id', 'pubkey', 'extra-field', 'missing-field', 'tag-not-string', 'fractional-time', 'negative-time', 'uppercase-id', 'content-after-signing');

/**
 * A grant for a new connection with at least one defect in the statement or its content; with
 * `policy`, also terms the bridge must refuse (revoked, expired, unserved method, future-dated).
 */
function brokenGrant(signer: EventSpec['signer'], methods: string[], policy: boolean): fc.Arbitrary<EventSpec> {
  const fieldDefects = policy ? [...GRANT_FORMAT_DEFECTS, ...GRANT_POLICY_DEFECTS] : GRANT_FORMAT_DEFECTS;
  const contentDefects = fc.subarray(fieldDefects, { minLength: 1, maxLength: 3 }).chain((fields) => fc.tuple(...fields.map(([name, arb]) => arb.map((v): [string, unknown] => [name, v]))));
  const future = policy ? [fc.constantFrom(3_600, 86_400 * 365).map((createdAt): EventSpec => ({ kind: 31347, signer, content: grantContent([], methods), tags: GRANT_TAGS, createdAt, defect: 'none' }))] : [];
  return fc.oneof(
    contentDefects.map((defects): EventSpec => ({ kind: 31347, signer, content: grantContent(defects, methods), tags: GRANT_TAGS, createdAt: 0, defect: 'none' })),
    eventDefect.map((defect): EventSpec => ({ kind: 31347, signer, content: grantContent([], methods), tags: GRANT_TAGS, createdAt: 0, defect })),
    fc.integer({ min: 0, max: 65535 }).filter((k) => k !== 31347).map((kind): EventSpec => ({ kind, signer, content: grantContent([], methods), tags: GRANT_TAGS, createdAt: 0, defect: 'none' })),
    ...future,
    // No d tag, or a first d tag that is not the connection.
    fc.constantFrom<string[][]>([['d', 'other'], ['p', '$conn']], [], [['p', '$conn']], [['d', 'other'], ['d', '$conn']], [['d', '$conn '], ['p', '$conn']], [['D', '$conn']]).map((tags): EventSpec => ({ kind: 31347, signer, content: grantContent([], methods), tags, createdAt: 0, defect: 'none' })),
    fc.oneof(anyUnicode(200), fc.constantFrom('', '{', 'null', '[]', '{"v":1}')).map((content): EventSpec => ({ kind: 31347, signer, content, tags: GRANT_TAGS, createdAt: 0, defect: 'none' })),
  );
}

const goodGrant = (signer: EventSpec['signer'], methods: string[], name = 'fuzz'): EventSpec => {
  const { json } = grantContent([], methods);
  return { kind: 31347, signer, content: { json: { ...(json as object), name } }, tags: GRANT_TAGS, createdAt: 0, defect: 'none' };
};
const goodOpen = (signer: EventSpec['signer']): EventSpec => ({ kind: 21348, signer, content: '', tags: [], createdAt: 0, defect: 'none' });
const brokenOpen = (signer: EventSpec['signer']): fc.Arbitrary<EventSpec> =>
  fc.oneof(
    eventDefect.map((defect): EventSpec => ({ ...goodOpen(signer), defect })),
    fc.integer({ min: 0, max: 65535 }).filter((k) => k !== 21348).map((kind): EventSpec => ({ ...goodOpen(signer), kind })),
  );

/**
 * A lock statement that must not take: wrong kind, broken, or content that is not
 * {"locked": bool}; with `future`, also one dated a day ahead (the bridge refuses those).
 */
const brokenLock = (signer: EventSpec['signer'], future: boolean): fc.Arbitrary<EventSpec> => {
  const lock = (content: EventSpec['content'], kind = 31349, defect: EventDefect = 'none'): EventSpec => ({ kind, signer, content, tags: [['d', 'deposit-lock']], createdAt: 0, defect });
  return fc.oneof(
    eventDefect.map((defect) => lock({ json: { locked: true } }, 31349, defect)),
    fc.integer({ min: 0, max: 65535 }).filter((k) => k !== 31349).map((kind) => lock({ json: { locked: true } }, kind)),
    fc.constantFrom<EventSpec['content']>({ json: { locked: 'yes' } }, { json: { locked: 1 } }, { json: { locked: true, until: 5 } }, { json: {} }, { json: [true] }, 'locked', '', '{"locked":true').map((content) => lock(content)),
    ...(future ? [fc.constant({ ...lock({ json: { locked: true } }, 31349), createdAt: 86_400 })] : []),
  );
};

// ---------------------------------------------------------------------------------------------
// Auth

const garbageAuth: fc.Arbitrary<Auth> = fc.oneof(
  fc.constant<Auth>({ t: 'none' }),
  fc
    .oneof(
      fc.constantFrom('', 'Nostr', 'Nostr ', 'Bearer abc', 'Basic dXNlcjpwYXNz', 'Nostr !!!', 'nostr e30=', 'Nostr e30=', 'Nostr bnVsbA==', 'Nostr W10=', 'NOSTR e30=', 'Nostr\te30='),
      fc.uint8Array({ maxLength: 600 }).map((b) => `Nostr ${Buffer.from(b).toString('base64')}`),
      fc.string({ maxLength: 200 }).map((s) => `Nostr ${s}`),
    )
    .map((header): Auth => ({ t: 'raw', header })),
  notAnEvent.map((v): Auth => ({ t: 'token', json: JSON.stringify(v) ?? 'null' })),
);

const brokenNip98 = (signer: Who): fc.Arbitrary<Auth> =>
  fc.constantFrom('url', 'method', 'payload', 'stale', 'future', 'kind', 'sig', 'extra-field').map((breakage): Auth => ({ t: 'nip98', signer, breakage: breakage as Extract<Auth, { t: 'nip98' }>['breakage'] }));

const goodNip98 = (signer: Who): Auth => ({ t: 'nip98', signer, breakage: 'none' });

// ---------------------------------------------------------------------------------------------
// Bodies per route

const contentTypes = fc.constantFrom<string | null>('application/json', 'application/json; charset=utf-8', 'text/plain', null, 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x', 'a/b', 'application/json; charset=utf-16');

const garbageBody: fc.Arbitrary<Body> = fc.oneof(
  fc.constant<Body>({ t: 'none' }),
  fc.oneof(anyUnicode(300), fc.constantFrom('{', '{"grant":', 'null', '[]', '""', '0', 'true', '{"a":1}{"b":2}')).map((text): Body => ({ t: 'text', text })),
  fc.jsonValue({ maxDepth: 4 }).map((value): Body => ({ t: 'json', value })),
  fc.constantFrom(270 * 1024, 300 * 1024).map((length): Body => ({ t: 'big', length })),
  fc.integer({ min: 50, max: 2_000 }).map((depth): Body => ({ t: 'text', text: `{"grant":${'['.repeat(depth)}${']'.repeat(depth)}}` })),
);

const $event = (spec: EventSpec) => ({ $event: spec });

/** The funded connection's real grant, as the vault already has it. */
const REAL_GRANT = { $realGrant: true };

/** A pay request body with at least one defect, most of them deep in the authorization. */
const brokenPayment: fc.Arbitrary<Body> = fc
  .record({
    defect: fc.constantFrom('amount', 'fee', 'key', 'encryption', 'request-signer', 'request-kind', 'request-expired', 'request-old', 'other-invoice', 'grant-signer', 'grant-garbage', 'request-garbage', 'body-type', 'idempotency', 'authorization-garbage'),
    invoiceIndex: fc.nat(),
    amount: fc.oneof(msatStringDefects, hugeNumbers.map(String), fc.constantFrom('1000', '0')),
    fee: fc.constantFrom('limit+1', '99999999999999999999'),
    idempotency: fc.oneof(fc.constant(''), fc.string({ minLength: 129, maxLength: 300 }), fc.integer()),
    garbage: notAnEvent,
  })
  .map(({ defect, invoiceIndex, amount, fee, idempotency, garbage }): Body => ({
    t: 'json',
    value: { $payment: { defect, invoiceIndex, amount, fee, idempotency, garbage } },
  }));

const invoiceBodyDefects: fc.Arbitrary<Body> = fc
  .oneof(
    fc.oneof(msatStringDefects, hugeNumbers, fc.constantFrom('0', '999', '100000000001', '1000000000000000')).map((amount_msat) => ({ amount_msat })),
    fc.record({ amount_msat: fc.constant('5000'), description: fc.oneof(fc.string({ minLength: 640, maxLength: 1_000 }), fc.integer(), fc.constant(null)) }),
    fc.record({ amount_msat: fc.constant('5000'), description_hash: fc.oneof(hex(0, 63), fc.constant('Z'.repeat(64)), fc.integer()) }),
    fc.record({ amount_msat: fc.constant('5000'), expiry_seconds: fc.oneof(fc.constantFrom(0, -1, 1.5, 31_536_001, '3600', null), hugeNumbers) }),
    // Without amount_msat the invoice is amountless (valid); with a bad expiry it is not.
    fc.constant({ expiry_seconds: 0 }),
    fc.constant({ amount_msat: 5000 }),
  )
  .map((value): Body => ({ t: 'json', value }));

const goodInvoiceBody: fc.Arbitrary<Body> = fc
  .record({ amount_msat: fc.integer({ min: 1_000, max: 10_000_000 }).map(String), description: fc.option(anyUnicode(60), { nil: undefined }), expiry_seconds: fc.option(fc.integer({ min: 60, max: 86_400 }), { nil: undefined }) }, { requiredKeys: ['amount_msat'] })
  .map((value): Body => ({ t: 'json', value }));

/** Deposit ids that are not the caller's, up to and past the schema's 128 characters. */
const otherId = fc.oneof(
  hex(64, 64),
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.string({ minLength: 65, maxLength: 300, unit: hexChar }),
  fc.constantFrom('..', '%2e%2e', 'null', '0', '-1', '💥', 'a b', '%00', '\u0000'),
);

// ---------------------------------------------------------------------------------------------
// Cases

interface Family {
  weight: number;
  arbitrary: fc.Arbitrary<HttpCase>;
}

const base = (route: Route, parts: Partial<HttpCase>): HttpCase => ({ route, operator: 0, id: { t: 'own' }, auth: { t: 'none' }, contentType: 'application/json', body: { t: 'none' }, query: '', valid: false, ...parts });

export function httpCaseArb(servedMethods: readonly string[]): fc.Arbitrary<HttpCase> {
  const methods = [...servedMethods];
  const operator = fc.nat({ max: 2 });
  const who = fc.constantFrom<Who>('owner', 'watcher', 'stranger');
  const vaultCaller = fc.constantFrom<Who>('owner', 'watcher');

  /** A request whose auth is garbage or broken, whatever its body. */
  const badAuthAnywhere = fc
    .record({
      route: fc.constantFrom<Route>('connections', 'bridge-lock', 'audit', 'open', 'invoices', 'payments', 'grants', 'vault-lock'),
      operator,
      auth: fc.oneof(garbageAuth, who.chain(brokenNip98)),
      contentType: contentTypes,
      body: fc.oneof(garbageBody, goodInvoiceBody, fc.constant<Body>({ t: 'json', value: { open: $event(goodOpen('stranger')) } })),
      query: fc.constantFrom('', '?limit=5'),
    })
    .map((p) => base(p.route, p));

  const families: Family[] = [
    { weight: 20, arbitrary: badAuthAnywhere },
    // POST /api/connections, signed right, with a broken body.
    {
      weight: 25,
      arbitrary: fc
        .record({
          signer: fc.constantFrom<Who>('owner', 'stranger'),
          grantSigner: fc.constantFrom<'self' | 'other'>('self', 'self', 'self', 'other'),
          which: fc.constantFrom('grant', 'grant', 'grant', 'open', 'garbage', 'both-garbage'),
          contentType: fc.constantFrom<string | null>('application/json', 'application/json', 'text/plain'),
        })
        .chain(({ signer, grantSigner, which, contentType }) => {
          const gSigner = grantSigner === 'self' ? signer : signer === 'owner' ? 'stranger' : 'owner';
          const body: fc.Arbitrary<Body> =
            which === 'garbage'
              ? garbageBody
              : which === 'both-garbage'
                ? fc.tuple(notAnEvent, notAnEvent).map(([grant, deposit_open]): Body => ({ t: 'json', value: { grant, deposit_open } }))
                : which === 'grant'
                  ? brokenGrant(gSigner, methods, true).map((g): Body => ({ t: 'json', value: { grant: $event(g), deposit_open: $event(goodOpen(signer)) } }))
                  : brokenOpen(signer).map((o): Body => ({ t: 'json', value: { grant: $event(goodGrant(gSigner, methods)), deposit_open: $event(o) } }));
          // A grant signed by another key than the request's is a defect by itself.
          const forgedSigner = grantSigner === 'other' ? fc.constant<Body>({ t: 'json', value: { grant: $event(goodGrant(gSigner, methods)), deposit_open: $event(goodOpen(signer)) } }) : body;
          return fc.tuple(fc.oneof(body, forgedSigner), fc.constant(goodNip98(signer)), fc.constant(contentType));
        })
        .map(([body, auth, contentType]) => base('connections', { body, auth, contentType })),
    },
    // The owner re-registering an existing connection with an older grant: 409.
    { weight: 2, arbitrary: fc.constant(base('connections', { auth: goodNip98('owner'), body: { t: 'json', value: { grant: { $staleGrant: true }, deposit_open: $event(goodOpen('owner')) } } })) },
    // POST /api/lock with a lock that must not take.
    {
      weight: 5,
      arbitrary: fc
        .tuple(fc.constantFrom<Who>('owner', 'stranger'), fc.constantFrom<'self' | 'other'>('self', 'other'))
        .chain(([signer, lockSigner]) => {
          const ls = lockSigner === 'self' ? signer : signer === 'owner' ? 'stranger' : 'owner';
          return fc.tuple(fc.constant(signer), lockSigner === 'other' ? fc.constant<EventSpec>({ kind: 31349, signer: ls, content: { json: { locked: true } }, tags: [['d', 'deposit-lock']], createdAt: 0, defect: 'none' }) : brokenLock(ls, true));
        })
        .map(([signer, lock]) => base('bridge-lock', { auth: goodNip98(signer), body: { t: 'json', value: { lock: $event(lock) } } })),
    },
    // GET /api/audit with a bad query.
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom('?limit=0', '?limit=501', '?limit=abc', '?limit=-1', '?limit=1.5', '?before=0', '?before=-5', '?before=abc', '?before=99999999999999999999', '?limit=', '?limit=5&limit=6'), fc.constantFrom<Who>('owner', 'stranger'))
        .map(([query, signer]) => base('audit', { query, auth: goodNip98(signer), body: { t: 'none' }, contentType: null })),
    },
    // POST /v0/deposits with a broken open statement.
    {
      weight: 6,
      arbitrary: fc
        .tuple(operator, who, fc.oneof(brokenOpen('stranger').map((o) => ({ open: $event(o) })), notAnEvent.map((open) => ({ open })), fc.constant({})))
        .map(([op, signer, value]) => base('open', { operator: op, auth: goodNip98(signer), body: { t: 'json', value } })),
    },
    // POST /v0/deposits/:id/invoices with bad params, or for a deposit that is not the caller's.
    {
      weight: 8,
      arbitrary: fc
        .tuple(operator, vaultCaller, fc.oneof(invoiceBodyDefects.map((body) => ({ body, id: { t: 'own' } as HttpCase['id'], caller: undefined as Who | undefined })), fc.tuple(goodInvoiceBody, otherId).map(([body, text]) => ({ body, id: { t: 'other', text } as HttpCase['id'], caller: undefined })), goodInvoiceBody.map((body) => ({ body, id: { t: 'own' } as HttpCase['id'], caller: 'stranger' as Who }))))
        .map(([op, signer, p]) => base('invoices', { operator: op, auth: goodNip98(p.caller ?? signer), body: p.body, id: p.id })),
    },
    // POST /v0/deposits/:id/payments with a broken body or authorization.
    {
      weight: 16,
      arbitrary: fc.tuple(operator, vaultCaller, brokenPayment, fc.oneof({ weight: 6, arbitrary: fc.constant<HttpCase['id']>({ t: 'own' }) }, { weight: 1, arbitrary: otherId.map((text): HttpCase['id'] => ({ t: 'other', text })) })).map(([op, signer, body, id]) => base('payments', { operator: op, auth: goodNip98(signer), body, id })),
    },
    // POST /v0/deposits/:id/grants: someone else's, broken, or older than the vault's.
    {
      weight: 5,
      arbitrary: fc
        .tuple(operator, vaultCaller, fc.oneof(brokenGrant('owner', methods, false).map((g) => ({ grant: $event(g) })), fc.constant({ grant: $event(goodGrant('stranger', methods)) }), fc.constant({ grant: { $staleGrant: true } }), notAnEvent.map((grant) => ({ grant }))))
        .map(([op, signer, value]) => base('grants', { operator: op, auth: goodNip98(signer), body: { t: 'json', value } })),
    },
    // POST /v0/deposits/:id/lock that must not take.
    {
      weight: 4,
      arbitrary: fc
        .tuple(operator, vaultCaller, fc.oneof(brokenLock('owner', false), fc.constant<EventSpec>({ kind: 31349, signer: 'stranger', content: { json: { locked: true } }, tags: [['d', 'deposit-lock']], createdAt: 0, defect: 'none' })))
        .map(([op, signer, lock]) => base('vault-lock', { operator: op, auth: goodNip98(signer), body: { t: 'json', value: { lock: $event(lock) } } })),
    },
    // The valid family: harmless requests that must succeed (or be refused cleanly).
    {
      weight: 3,
      arbitrary: fc.oneof(
        fc.tuple(operator, who).map(([op, signer]) => base('open', { operator: op, auth: goodNip98(signer), body: { t: 'json', value: { open: $event(goodOpen('nobody')) } }, valid: true })),
        fc.tuple(operator, vaultCaller, goodInvoiceBody).map(([op, signer, body]) => base('invoices', { operator: op, auth: goodNip98(signer), body, valid: true })),
        fc.tuple(operator, vaultCaller).map(([op, signer]) => base('grants', { operator: op, auth: goodNip98(signer), body: { t: 'json', value: { grant: REAL_GRANT } }, valid: true })),
        fc.constantFrom('', '?limit=1', '?limit=500').map((query) => base('audit', { query, auth: goodNip98('owner'), body: { t: 'none' }, contentType: null, valid: true })),
        anyUnicode(60).map((name) => base('connections', { auth: goodNip98('stranger'), body: { t: 'json', value: { grant: $event(goodGrant('stranger', methods.slice(0, 2), name)), deposit_open: $event(goodOpen('stranger')) } }, valid: true })),
      ),
    },
  ];
  return fc.oneof(...families);
}

// ---------------------------------------------------------------------------------------------
// From a case to a request

export interface HttpWorld {
  bridgeUrl: string;
  operatorUrls: string[];
  /** The owner's deposit id at each operator. */
  ownDeposits: string[];
  keys: Record<Who, Uint8Array>;
  /** The funded connection: its keys with the wallet service and its grant as registered. */
  connection: ClientKeys;
  servicePubkey: string;
  grant: Event;
  /** Invoices nobody can pay (regtest, unknown payee), with their amounts. */
  invoices: { invoice: string; amountMsat: number | null }[];
}

export interface BuiltRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
}

function pathOf(c: HttpCase, w: HttpWorld): { base: string; path: string; method: 'GET' | 'POST' } {
  const id = c.id.t === 'own' ? (w.ownDeposits[c.operator] ?? 'none') : encodeURIComponent(c.id.text);
  const vault = w.operatorUrls[c.operator] ?? '';
  switch (c.route) {
    case 'connections':
      return { base: w.bridgeUrl, path: '/api/connections', method: 'POST' };
    case 'bridge-lock':
      return { base: w.bridgeUrl, path: '/api/lock', method: 'POST' };
    case 'audit':
      return { base: w.bridgeUrl, path: `/api/audit${c.query}`, method: 'GET' };
    case 'open':
      return { base: vault, path: '/v0/deposits', method: 'POST' };
    case 'invoices':
      return { base: vault, path: `/v0/deposits/${id}/invoices`, method: 'POST' };
    case 'payments':
      return { base: vault, path: `/v0/deposits/${id}/payments`, method: 'POST' };
    case 'grants':
      return { base: vault, path: `/v0/deposits/${id}/grants`, method: 'POST' };
    case 'vault-lock':
      return { base: vault, path: `/v0/deposits/${id}/lock`, method: 'POST' };
  }
}

/** Signs `spec` (breaking it as it says); `conn` replaces `$conn` in content and tags. */
function buildEvent(spec: EventSpec, conn: string, signerKeys: Record<string, Uint8Array>): unknown {
  const fill = (text: string) => text.replaceAll('$conn', conn).replaceAll('$other', bytesToHex(randomBytes(32)));
  const content = typeof spec.content === 'string' ? spec.content : fill(JSON.stringify(spec.content.json));
  const tags = spec.tags.map((t) => t.map(fill));
  const secret = signerKeys[spec.signer] ?? generateSecretKey();
  const event: Record<string, unknown> = { ...fastFinalizeEvent({ kind: spec.kind, created_at: Math.floor(Date.now() / 1000) + spec.createdAt, tags, content }, secret) };
  const flip = (hexText: string) => (hexText[0] === '0' ? '1' : '0') + hexText.slice(1);
  switch (spec.defect) {
    case 'none':
      break;
    case 'sig':
      event.sig = flip(event.sig as string);
      break;
    case 'id':
      event.id = flip(event.id as string);
      break;
    case 'pubkey':
      event.pubkey = getPublicKey(generateSecretKey());
      break;
    case 'extra-field':
      event.relay = 'wss://x';
      break;
    case 'missing-field':
      delete event.tags;
      break;
    case 'tag-not-string':
      event.tags = [...tags, ['n', 5]];
      break;
    case 'fractional-time':
      event.created_at = (event.created_at as number) + 0.5;
      break;
    case 'negative-time':
      event.created_at = -1;
      break;
    case 'uppercase-id':
      event.id = (event.id as string).toUpperCase();
      break;
    case 'content-after-signing':
      event.content = `${content} `;
      break;
  }
  return event;
}

/** Fills the body's placeholders: signed statements, the real grant, a pay request. */
function fillBody(value: unknown, w: HttpWorld, signerKeys: Record<string, Uint8Array>, conn: string): unknown {
  if (Array.isArray(value)) return value.map((v) => fillBody(v, w, signerKeys, conn));
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  if ('$event' in record) return buildEvent(record.$event as EventSpec, conn, signerKeys);
  if ('$realGrant' in record) return w.grant;
  if ('$staleGrant' in record) {
    // The owner's grant for the funded connection, re-signed older than the one the vault has.
    const content = JSON.parse(w.grant.content) as Record<string, unknown>;
    return fastFinalizeEvent({ kind: 31347, created_at: w.grant.created_at - 100, tags: w.grant.tags, content: JSON.stringify({ ...content, name: 'older' }) }, signerKeys.owner as Uint8Array);
  }
  if ('$payment' in record) return payment(record.$payment as PaymentSpec, w, signerKeys);
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fillBody(v, w, signerKeys, conn)]));
}

function feeLimit(amount: bigint): bigint {
  const proportional = amount / 100n;
  return proportional > 10_000n ? proportional : 10_000n;
}

interface PaymentSpec {
  defect: string;
  invoiceIndex: number;
  amount: string;
  fee: string;
  idempotency: unknown;
  garbage: unknown;
}

/** A pay request as a bridge would send it, with exactly the defect the spec names. */
function payment(p: PaymentSpec, w: HttpWorld, signerKeys: Record<string, Uint8Array>): unknown {
  const payable = w.invoices.filter((i) => i.amountMsat !== null);
  const pick = payable[p.invoiceIndex % payable.length] ?? { invoice: 'lnbcrt1', amountMsat: 1000 };
  const other = payable[(p.invoiceIndex + 1) % payable.length] ?? pick;
  const now = Math.floor(Date.now() / 1000);
  const signedInvoice = p.defect === 'other-invoice' ? other.invoice : pick.invoice;
  const tags = [
    ['p', w.servicePubkey],
    ['encryption', 'nip44_v2'],
    ...(p.defect === 'request-expired' ? [['expiration', String(now - 10)]] : []),
  ];
  const content = encryptFor(w.connection, 'nip44_v2', JSON.stringify({ method: 'pay_invoice', params: { invoice: signedInvoice } }));
  const requestSigner = p.defect === 'request-signer' ? (signerKeys.stranger as Uint8Array) : w.connection.secretKey;
  const request = fastFinalizeEvent({ kind: p.defect === 'request-kind' ? 23195 : 23194, created_at: p.defect === 'request-old' ? now - 1_000 : now, tags, content }, requestSigner);
  const grant = p.defect === 'grant-signer' ? fastFinalizeEvent({ kind: 31347, created_at: now, tags: w.grant.tags, content: w.grant.content }, signerKeys.stranger as Uint8Array) : p.defect === 'grant-garbage' ? p.garbage : w.grant;
  const authorization =
    p.defect === 'authorization-garbage'
      ? p.garbage
      : {
          grant,
          request: p.defect === 'request-garbage' ? p.garbage : request,
          encryption: p.defect === 'encryption' ? 'nip04' : 'nip44_v2',
          key: p.defect === 'key' ? bytesToHex(randomBytes(32)) : bytesToHex(w.connection.nip44),
        };
  const amount = String(pick.amountMsat);
  return {
    invoice: pick.invoice,
    amount_msat: p.defect === 'amount' ? (p.amount === amount ? `${amount}1` : p.amount) : p.defect === 'body-type' ? Number(amount) : amount,
    // The grant's fee limit is max(10 sat, 1 %): one msat more, or a number out of range.
    max_fee_msat: p.defect === 'fee' ? (p.fee.length > 18 ? p.fee : String(feeLimit(BigInt(amount)) + 1n)) : String(feeLimit(BigInt(amount))),
    idempotency_key: p.defect === 'idempotency' ? p.idempotency : request.id,
    authorization,
  };
}

export function buildRequest(c: HttpCase, w: HttpWorld): BuiltRequest {
  const { base, path, method } = pathOf(c, w);
  const url = base + path;
  const conn = getPublicKey(generateSecretKey());
  let body: string | Uint8Array | undefined;
  switch (c.body.t) {
    case 'none':
      body = undefined;
      break;
    case 'text':
      body = c.body.text;
      break;
    case 'big':
      body = `{"grant":"${'x'.repeat(c.body.length)}"}`;
      break;
    case 'json':
      body = JSON.stringify(fillBody(c.body.value, w, w.keys, conn)) ?? 'null';
      break;
  }
  if (method === 'GET') body = undefined;
  const headers: Record<string, string> = {};
  if (c.contentType !== null && body !== undefined) headers['content-type'] = c.contentType;
  const auth = c.auth;
  if (auth.t === 'raw') headers.authorization = auth.header;
  else if (auth.t === 'token') headers.authorization = `Nostr ${Buffer.from(auth.json).toString('base64')}`;
  else if (auth.t === 'nip98') {
    const secret = w.keys[auth.signer];
    const b = auth.breakage;
    const event = nip98Event(
      secret,
      b === 'url' ? `${url}x` : b === 'query' ? `${url}?x=1` : url,
      b === 'method' ? (method === 'GET' ? 'POST' : 'GET') : method,
      b === 'payload' ? `${typeof body === 'string' ? body : ''} ` : b === 'no-payload' ? undefined : typeof body === 'string' ? body : undefined,
      (t) => {
        if (b === 'stale') t.created_at -= 120;
        if (b === 'future') t.created_at += 120;
        if (b === 'kind') t.kind = 27236;
        // A POST without a body has no payload to break: break the URL instead.
        if (b === 'payload' && (body === undefined || body === '')) t.tags[0] = ['u', `${url}/`];
      },
    );
    const sent: Record<string, unknown> = { ...event };
    if (b === 'sig') sent.sig = `${(event.sig[0] === '0' ? '1' : '0') + event.sig.slice(1)}`;
    if (b === 'extra-field') sent.extra = 1;
    headers.authorization = nip98Header(sent);
  }
  // Bodies as bytes keep fetch from adding a content type of its own.
  return { url, method, headers, body: typeof body === 'string' ? new TextEncoder().encode(body) : body };
}
