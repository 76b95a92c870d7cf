/**
 * Sweeps (docs/sweep.md): a user's policy "keep at most X in deposits, pay the rest to my own
 * node or lightning address". The bridge holds the secret of one connection whose grant names
 * that destination and nothing else, signs a NIP-47 request with it exactly as an app would,
 * and pays it through the ordinary pipeline (`pay` in payments.ts: admission under the
 * connection's lock, reservation, journal, the request id as idempotency key, the grant's fee
 * limit), so bridge and vaults verify it as any app's payment. At most one sweep per user is in
 * flight; one that fails is tried again on the next pass.
 */
import { sql } from 'kysely';
import { generateSecretKey, getPublicKey, type Event } from 'nostr-tools/pure';
import type { SweepPolicyRow } from '../db/schema.ts';
import type { BridgeKeys } from '../nwc/keys.ts';
import { msatToNip47, type FeeLimit, type Msat } from '../protocol/amounts.ts';
import { parseSignedPayment, type SignedPayment } from '../protocol/authorization.ts';
import { grantAllowsTarget, grantInForce, parseGrant, signedPaymentTarget, type Grant, type GrantDestination } from '../protocol/grant.ts';
import { bytesToHex, hexToBytes } from '../protocol/hex.ts';
import { KIND } from '../protocol/kinds.ts';
import { Nip47Error, type Nip47ErrorCode } from '../protocol/nip47-error.ts';
import { signEvent, tagValue } from '../protocol/nostr-event.ts';
import { decryptContent, encryptContent, sharedKey } from '../protocol/nwc-encryption.ts';
import { nwcRequestBodySchema } from '../protocol/nwc-request.ts';
import { connectionFromRow, type Connection } from './connections.ts';
import { BridgeStopping, type WalletContext } from './context.ts';
import { depositCandidates } from './deposit-candidates.ts';
import { pay, type PaymentOutcome, type PaymentRequest } from './payments.ts';

/** How often the background job looks at users with a sweep policy. */
export const SWEEP_INTERVAL_MS = 600_000;

export interface SweepOptions {
  /**
   * How long one pass waits for a sweep to become final before going on to the next user; the
   * payment stays in flight (driven to its end, and asked about by the pending-payment job) and
   * blocks another sweep of its user until it is final.
   */
  waitMs: number;
}

export const DEFAULT_SWEEP_OPTIONS: SweepOptions = { waitMs: 30_000 };

/**
 * A claim on a sweep whose payment never reached admission (a crash in between) is given up after
 * this long; younger ones may belong to a pass still admitting it on another instance.
 */
const STALE_CLAIM_SECONDS = 120;

/** The bridge keys a sweep needs: the connection's wallet service key opens its sealed secret. */
export type SweepKeys = Pick<BridgeKeys, 'servicePubkey' | 'forConnection'>;

/** A sweep made (or resumed) by a pass, and how it stands. */
export type SweepResult =
  | { userPubkey: string; state: 'settled'; requestId: string; transactionId: bigint; amountMsat: Msat; feeMsat: Msat; paymentHash: string }
  | { userPubkey: string; state: 'pending'; requestId: string; amountMsat: Msat }
  | { userPubkey: string; state: 'failed'; requestId: string; amountMsat: Msat; code: Nip47ErrorCode; reason: string };

/** A connection secret as the bridge keeps it: NIP-44 v2 under ECDH(a fresh key, the connection's wallet service key). */
export interface SealedSecret {
  encryptedSecret: string;
  /** The fresh key's public half. */
  encryptionPubkey: string;
}

/**
 * Seals a connection secret to a wallet service public key. Only the holder of that key's
 * secret (derived from the master key) can open it; the fresh key is thrown away. NIP-44's MAC
 * makes a sealed secret copied to another connection's row fail to open.
 */
export function sealConnectionSecret(secret: Uint8Array, servicePubkey: string): SealedSecret {
  const ephemeral = generateSecretKey();
  const key = sharedKey('nip44_v2', ephemeral, servicePubkey);
  return { encryptedSecret: encryptContent('nip44_v2', key, bytesToHex(secret)), encryptionPubkey: getPublicKey(ephemeral) };
}

/** Opens a sealed connection secret; null unless it opens and is the secret of `connectionPubkey`. */
export function openConnectionSecret(sealed: SealedSecret, serviceSecret: Uint8Array, connectionPubkey: string): Uint8Array | null {
  try {
    const hex = decryptContent('nip44_v2', sharedKey('nip44_v2', serviceSecret, sealed.encryptionPubkey), sealed.encryptedSecret);
    if (!/^[0-9a-f]{64}$/.test(hex)) return null;
    const secret = hexToBytes(hex);
    return getPublicKey(secret) === connectionPubkey ? secret : null;
  } catch {
    return null;
  }
}

/**
 * The most a deposit holding `available` can send with the fee limit for that amount beside it:
 * amount + max(base, amount × ppm / 10^6) ≤ available. Zero when not even the base fits.
 */
export function sendableWithFee(available: Msat, feeLimit: FeeLimit): Msat {
  const byBase = available - feeLimit.baseMsat;
  const byRate = (available * 1_000_000n) / (1_000_000n + BigInt(feeLimit.ppm));
  const amount = byBase < byRate ? byBase : byRate;
  return amount > 0n ? amount : 0n;
}

/**
 * How much one sweep pays, or null for none. The amount is the whole excess over `keepMaxMsat`
 * of the user's available total, so what stays is at most `keepMaxMsat` (the routing fee comes
 * out of what stays, at most the fee limit). A sweep is one payment from one deposit, so it is
 * also at most what the fullest payable deposit can send with its fee limit beside it; the rest
 * goes on a later pass. None when the excess, or what one deposit can send of it, is below
 * `minSweepMsat`.
 */
export function sweepAmount(p: { totalAvailableMsat: Msat; largestAvailableMsat: Msat; keepMaxMsat: Msat; minSweepMsat: Msat; feeLimit: FeeLimit }): Msat | null {
  const excess = p.totalAvailableMsat - p.keepMaxMsat;
  if (excess <= 0n || excess < p.minSweepMsat) return null;
  const sendable = sendableWithFee(p.largestAvailableMsat, p.feeLimit);
  const amount = excess < sendable ? excess : sendable;
  return amount > 0n && amount >= p.minSweepMsat ? amount : null;
}

/** The NIP-47 request body paying `amount` to the grant's destination, as an app writes it. */
export function sweepRequestBody(destination: GrantDestination, amountMsat: Msat, keepMaxMsat: Msat): { method: string; params: Record<string, unknown> } {
  // Shown with the transaction (list_transactions metadata): why the money left.
  const metadata = { sweep: { keep_max_msat: keepMaxMsat.toString() } };
  return destination.type === 'keysend'
    ? { method: 'pay_keysend', params: { amount: msatToNip47(amountMsat), pubkey: destination.node, metadata } }
    : { method: 'pay', params: { payment: destination.address, amount: msatToNip47(amountMsat), metadata } };
}

/**
 * A kind 23194 request signed by the connection key, encrypted (NIP-44 v2) to the connection's
 * wallet service key: byte for byte what an app holding the secret would send.
 */
function signSweepRequest(secret: Uint8Array, servicePubkey: string, body: { method: string; params: Record<string, unknown> }, nowSec: number): { request: Event; key: Uint8Array } {
  const key = sharedKey('nip44_v2', secret, servicePubkey);
  const request = signEvent(
    {
      kind: KIND.nwcRequest,
      created_at: nowSec,
      tags: [
        ['p', servicePubkey],
        ['encryption', 'nip44_v2'],
      ],
      content: encryptContent('nip44_v2', key, JSON.stringify(body)),
    },
    secret,
  );
  return { request, key };
}

/** Reads back a stored sweep request with the connection secret (to resume it after a restart). */
function readSweepRequest(request: Event, secret: Uint8Array): { key: Uint8Array; signed: SignedPayment } | null {
  const servicePubkey = tagValue(request, 'p');
  if (servicePubkey === undefined) return null;
  try {
    const key = sharedKey('nip44_v2', secret, servicePubkey);
    const body = nwcRequestBodySchema.safeParse(JSON.parse(decryptContent('nip44_v2', key, request.content)));
    if (!body.success) return null;
    const signed = parseSignedPayment(body.data);
    return signed.ok ? { key, signed: signed.value } : null;
  } catch {
    return null;
  }
}

/** The user's sweep: policy row, connection, the grant as signed, and the opened secret; null when it cannot sweep now. */
async function loadSweep(ctx: WalletContext, keys: SweepKeys, userPubkey: string): Promise<{ row: SweepPolicyRow; connection: Connection; grant: Grant & { destination: GrantDestination }; secret: Uint8Array } | null> {
  const row = await ctx.db.selectFrom('sweep_policies').selectAll().where('user_pubkey', '=', userPubkey).executeTakeFirst();
  if (!row) return null;
  const connectionRow = await ctx.db.selectFrom('connections').selectAll().where('pubkey', '=', row.connection_pubkey).executeTakeFirst();
  if (!connectionRow) return null;
  const connection = connectionFromRow(connectionRow);
  // The grant as the user signed it: its destination is what the vaults will hold the payment to.
  const parsed = parseGrant(connection.grantEvent);
  if (!parsed.ok || parsed.value.userPubkey !== userPubkey) {
    ctx.logger.error({ user: userPubkey, connection: row.connection_pubkey }, 'sweep connection grant does not parse; not sweeping');
    return null;
  }
  const grant = parsed.value;
  const destination = grant.destination;
  // Never sweep on a grant without a destination: the bridge holds this secret only because of it.
  if (destination === undefined || !grantInForce(grant, ctx.now()).ok) return null;
  const secret = openConnectionSecret(
    { encryptedSecret: row.encrypted_secret, encryptionPubkey: row.encryption_pubkey },
    keys.forConnection(row.connection_pubkey).secret,
    row.connection_pubkey,
  );
  if (secret === null) {
    ctx.logger.error({ user: userPubkey, connection: row.connection_pubkey }, 'sweep connection secret does not open with this master key; not sweeping');
    return null;
  }
  return { row, connection, grant: { ...grant, destination }, secret };
}

/** Gives up the user's claim on the sweep `requestId` (and only that one). */
async function releaseClaim(ctx: WalletContext, userPubkey: string, requestId: string): Promise<void> {
  await ctx.db
    .updateTable('sweep_policies')
    .set({ in_flight_request: null, updated_at: new Date() })
    .where('user_pubkey', '=', userPubkey)
    .where(sql<string>`in_flight_request->>'id'`, '=', requestId)
    .execute();
}

/**
 * Pays a claimed sweep through the ordinary pipeline, waiting at most `waitMs` for it to be
 * final. The claim is released once the payment is final, or when it was refused before
 * anything was reserved; a payment still in flight keeps it.
 */
async function runSweep(ctx: WalletContext, userPubkey: string, req: PaymentRequest, options: SweepOptions): Promise<SweepResult> {
  const requestId = req.request.id;
  const amountMsat = req.signed.amountMsat;
  // Never rejects: a payment left running past the wait must not become an unhandled rejection.
  const paying = pay(ctx, req).then(
    (outcome): { outcome: PaymentOutcome } => ({ outcome }),
    (error: unknown): { error: unknown } => ({ error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), options.waitMs)));
  const first = await Promise.race([paying, waited]);
  clearTimeout(timer);
  if (first === null) return { userPubkey, state: 'pending', requestId, amountMsat };
  if ('outcome' in first) {
    await releaseClaim(ctx, userPubkey, requestId);
    const o = first.outcome;
    ctx.logger.info({ user: userPubkey, amount_msat: o.amountMsat.toString(), fee_msat: o.feesPaidMsat.toString() }, 'swept');
    return { userPubkey, state: 'settled', requestId, transactionId: o.transactionId, amountMsat: o.amountMsat, feeMsat: o.feesPaidMsat, paymentHash: o.paymentHash };
  }
  const error = first.error;
  const tx = await ctx.db.selectFrom('transactions').select('state').where('request_event_id', '=', requestId).executeTakeFirst();
  // Stopping, or a payment the vault may still make: it stays in flight and claimed.
  if (error instanceof BridgeStopping || tx?.state === 'pending') return { userPubkey, state: 'pending', requestId, amountMsat };
  await releaseClaim(ctx, userPubkey, requestId);
  const code: Nip47ErrorCode = error instanceof Nip47Error ? error.code : 'INTERNAL';
  const reason = error instanceof Nip47Error ? error.message : 'internal error';
  if (!(error instanceof Nip47Error)) ctx.logger.error({ user: userPubkey, err: error }, 'sweep failed unexpectedly; will try again');
  else ctx.logger.warn({ user: userPubkey, code, reason }, 'sweep failed; will try again on the next pass');
  return { userPubkey, state: 'failed', requestId, amountMsat, code, reason };
}

/**
 * The sweep of one user: the one in flight resumed, or, when the available total exceeds the
 * policy's `keep_max` by at least `min_sweep`, a new one (see `sweepAmount`). Null when there is
 * nothing to do (no policy, nothing to sweep, the grant not in force, the user locked, another
 * pass holding the user's claim).
 */
export async function sweepUser(ctx: WalletContext, keys: SweepKeys, userPubkey: string, options: SweepOptions = DEFAULT_SWEEP_OPTIONS): Promise<SweepResult | null> {
  const sweep = await loadSweep(ctx, keys, userPubkey);
  if (!sweep) return null;
  const { row, connection, grant, secret } = sweep;

  const inFlight = row.in_flight_request;
  if (inFlight !== null) {
    const tx = await ctx.db.selectFrom('transactions').select('state').where('request_event_id', '=', inFlight.id).executeTakeFirst();
    if (tx?.state === 'pending') {
      const read = readSweepRequest(inFlight, secret);
      if (!read) return null;
      return runSweep(ctx, userPubkey, { connection, request: inFlight, encryption: 'nip44_v2', key: read.key, signed: read.signed }, options);
    }
    // Admitted by no one yet and recent: possibly another instance's pass, mid-admission.
    if (!tx && inFlight.created_at > ctx.now() - STALE_CLAIM_SECONDS) return null;
    await releaseClaim(ctx, userPubkey, inFlight.id);
  }

  const user = await ctx.db.selectFrom('users').select('locked').where('pubkey', '=', userPubkey).executeTakeFirst();
  if (!user || user.locked) return null;
  const candidates = await depositCandidates(ctx, ctx.db, userPubkey);
  const totalAvailableMsat = candidates.reduce((sum, c) => sum + (c.availableMsat > 0n ? c.availableMsat : 0n), 0n);
  const allowed = grant.vaultOperators;
  const largestAvailableMsat = candidates
    .filter((c) => c.healthy && (allowed === null || allowed.includes(c.operatorPubkey)))
    .reduce((max, c) => (c.availableMsat > max ? c.availableMsat : max), 0n);
  const amountMsat = sweepAmount({ totalAvailableMsat, largestAvailableMsat, keepMaxMsat: row.keep_max_msat, minSweepMsat: row.min_sweep_msat, feeLimit: grant.feeLimit });
  if (amountMsat === null) return null;

  const servicePubkey = connection.servicePubkey ?? keys.servicePubkey;
  const body = sweepRequestBody(grant.destination, amountMsat, row.keep_max_msat);
  const { request, key } = signSweepRequest(secret, servicePubkey, body, ctx.now());
  // Read back with the function vaults use, and held to the grant's destination as any app's request.
  const signed = parseSignedPayment(body);
  if (!signed.ok) throw new Error(`sweep request does not parse: ${signed.error.message}`);
  const allowedTarget = grantAllowsTarget(grant, signedPaymentTarget(signed.value));
  if (!allowedTarget.ok) throw new Error(`sweep request is not to the grant's destination: ${allowedTarget.error.message}`);

  // The claim: one sweep per user in flight, whichever instance's pass gets here first.
  const claimed = await ctx.db
    .updateTable('sweep_policies')
    .set({ in_flight_request: JSON.stringify(request), updated_at: new Date() })
    .where('user_pubkey', '=', userPubkey)
    .where('connection_pubkey', '=', connection.pubkey)
    .where('in_flight_request', 'is', null)
    .executeTakeFirst();
  if (claimed.numUpdatedRows === 0n) return null;
  return runSweep(ctx, userPubkey, { connection, request, encryption: 'nip44_v2', key, signed: signed.value }, options);
}

/**
 * One pass of the background job: each user with a sweep policy on a connection not revoked
 * gets at most one sweep (`sweepUser`). A user whose sweep fails is tried again next pass.
 */
export async function sweepOnce(ctx: WalletContext, keys: SweepKeys, options: SweepOptions = DEFAULT_SWEEP_OPTIONS): Promise<SweepResult[]> {
  const users = await ctx.db
    .selectFrom('sweep_policies')
    .innerJoin('connections', 'connections.pubkey', 'sweep_policies.connection_pubkey')
    .select('sweep_policies.user_pubkey')
    .where('connections.revoked', '=', false)
    .orderBy('sweep_policies.user_pubkey')
    .execute();
  const results: SweepResult[] = [];
  for (const { user_pubkey } of users) {
    if (ctx.stopping.aborted) break;
    try {
      const result = await sweepUser(ctx, keys, user_pubkey, options);
      if (result) results.push(result);
    } catch (error) {
      ctx.logger.warn({ user: user_pubkey, err: error }, 'sweeping a user failed; will try again');
    }
  }
  return results;
}

