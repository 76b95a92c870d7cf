import type { FastifyPluginAsync } from 'fastify';
import { getPublicKey } from 'nostr-tools/pure';
import { z } from 'zod';
import type { SweepPolicyRow } from '../db/schema.ts';
import { ApiRefusal } from '../deposits/api-refusal.ts';
import { registerConnection } from '../deposits/connections.ts';
import { sealConnectionSecret } from '../deposits/sweep.ts';
import { msatString } from '../protocol/amounts.ts';
import { parseGrant, type Grant, type GrantDestination } from '../protocol/grant.ts';
import { hex32, hexToBytes } from '../protocol/hex.ts';
import { nostrEventSchema, type NostrEvent } from '../protocol/nostr-event.ts';
import { jsonBody, requestSigner } from './request-parsing.ts';
import type { HttpDependencies } from './server.ts';

const policySchema = z.strictObject({
  keep_max_msat: msatString,
  min_sweep_msat: msatString.refine((v) => v > 0n, 'min_sweep_msat must be positive'),
});
const setSchema = z.strictObject({
  grant: nostrEventSchema,
  deposit_open: nostrEventSchema,
  connection_secret: hex32,
  policy: policySchema,
  /** The user's revocation of the sweep connection this one replaces. */
  revoke: nostrEventSchema.optional(),
});
const offSchema = z.strictObject({
  policy: z.null(),
  revoke: nostrEventSchema.optional(),
  deposit_open: nostrEventSchema.optional(),
});
const EXPECTED =
  '{"grant": <event>, "deposit_open": <event>, "connection_secret": "<hex>", "policy": {"keep_max_msat": "<msat>", "min_sweep_msat": "<msat>"}, "revoke"?: <event>} or {"policy": null, "revoke"?: <event>, "deposit_open"?: <event>}';

/** The NIP-47 method that pays a destination: keysend to a node, NWC-321 `pay` to an address. */
export function sweepMethodFor(destination: GrantDestination): 'pay_keysend' | 'pay' {
  return destination.type === 'keysend' ? 'pay_keysend' : 'pay';
}

function destinationJson(destination: GrantDestination | undefined) {
  if (!destination) return null;
  return destination.type === 'keysend' ? { type: 'keysend', node: destination.node } : { type: 'lightning_address', address: destination.address };
}

/**
 * A grant fit for a connection whose secret the bridge keeps: signed by the caller, in force,
 * naming a destination, and allowing exactly the one method that pays it (docs/sweep.md).
 */
function sweepGrant(event: NostrEvent, user: string): Grant & { destination: GrantDestination } {
  const parsed = parseGrant(event);
  if (!parsed.ok) throw new ApiRefusal('BAD_REQUEST', parsed.error.message);
  const grant = parsed.value;
  if (grant.userPubkey !== user) throw new ApiRefusal('FORBIDDEN', 'the grant must be signed by the key that signs the request');
  if (grant.revoked) throw new ApiRefusal('BAD_REQUEST', 'a sweep grant must not be a revocation');
  const destination = grant.destination;
  // The bridge keeps this secret only because the grant confines it to the user's own destination.
  if (!destination) throw new ApiRefusal('BAD_REQUEST', 'a sweep grant must name its destination');
  const method = sweepMethodFor(destination);
  if (grant.methods.length !== 1 || grant.methods[0] !== method) throw new ApiRefusal('BAD_REQUEST', `a sweep grant to this destination allows exactly ["${method}"]`);
  return { ...grant, destination };
}

/** The user's revocation of their current sweep connection. */
function checkRevocation(event: NostrEvent, user: string, current: SweepPolicyRow | undefined): void {
  const parsed = parseGrant(event);
  if (!parsed.ok) throw new ApiRefusal('BAD_REQUEST', `revoke: ${parsed.error.message}`);
  const revocation = parsed.value;
  if (revocation.userPubkey !== user) throw new ApiRefusal('FORBIDDEN', 'revoke: must be signed by the key that signs the request');
  if (!revocation.revoked) throw new ApiRefusal('BAD_REQUEST', 'revoke: must be a revocation ("revoked": true)');
  if (!current || revocation.connectionPubkey !== current.connection_pubkey) throw new ApiRefusal('BAD_REQUEST', 'revoke: must name the current sweep connection');
}

/**
 * The user's sweep policy (docs/sweep.md), NIP-98 signed by the user:
 *
 * - `GET /api/sweep`: the policy, or `{"sweep": null}`; never the secret.
 * - `PUT /api/sweep` with a grant naming a destination, the connection's secret, the deposit-open
 *   statement and `policy: {keep_max_msat, min_sweep_msat}`: registers the connection as any
 *   other and keeps its secret sealed to its wallet service key (master-key derived); `revoke`
 *   optionally revokes the sweep connection it replaces.
 * - `PUT /api/sweep` with `policy: null`: forgets the policy and its secret; with `revoke` (and
 *   `deposit_open`) the connection is revoked at the bridge and every vault.
 */
export function sweepRoute(deps: HttpDependencies): FastifyPluginAsync {
  const signer = requestSigner(deps.publicUrl);

  const view = async (user: string) => {
    const row = await deps.db
      .selectFrom('sweep_policies')
      .innerJoin('connections', 'connections.pubkey', 'sweep_policies.connection_pubkey')
      .select([
        'sweep_policies.connection_pubkey',
        'sweep_policies.keep_max_msat',
        'sweep_policies.min_sweep_msat',
        'sweep_policies.in_flight_request',
        'sweep_policies.created_at',
        'sweep_policies.updated_at',
        'connections.grant_event',
        'connections.grant_created_at',
        'connections.revoked',
      ])
      .where('sweep_policies.user_pubkey', '=', user)
      .executeTakeFirst();
    if (!row) return null;
    const grant = parseGrant(row.grant_event);
    return {
      connection_pubkey: row.connection_pubkey,
      destination: destinationJson(grant.ok ? grant.value.destination : undefined),
      keep_max_msat: row.keep_max_msat.toString(),
      min_sweep_msat: row.min_sweep_msat.toString(),
      grant_created_at: Number(row.grant_created_at),
      revoked: row.revoked,
      in_flight: row.in_flight_request !== null,
      created_at: Math.floor(row.created_at.getTime() / 1000),
      updated_at: Math.floor(row.updated_at.getTime() / 1000),
    };
  };

  const revoke = async (user: string, revocation: NostrEvent, depositOpen: NostrEvent) => {
    const { connection } = await registerConnection(
      deps.db,
      deps.wallet.operators,
      deps.servedMethods,
      { authPubkey: user, grantEvent: revocation, depositOpenEvent: depositOpen, servicePubkeyFor: deps.servicePubkeyFor },
      deps.logger,
    );
    deps.onRegistered(connection);
    return connection.pubkey;
  };

  return async (app) => {
    app.get('/api/sweep', async (req) => ({ sweep: await view(signer(req)) }));

    app.put('/api/sweep', async (req, reply) => {
      const user = signer(req);
      const body = jsonBody(req, z.union([setSchema, offSchema]), EXPECTED);
      const current = await deps.db.selectFrom('sweep_policies').selectAll().where('user_pubkey', '=', user).executeTakeFirst();

      if (body.policy === null) {
        if (!current) throw new ApiRefusal('NOT_FOUND', 'no sweep is set');
        if (body.revoke) {
          checkRevocation(body.revoke, user, current);
          if (!body.deposit_open) throw new ApiRefusal('BAD_REQUEST', 'revoke needs deposit_open, as any registration');
        }
        // The secret goes first: from here on the bridge cannot sign for this connection.
        await deps.db.deleteFrom('sweep_policies').where('user_pubkey', '=', user).execute();
        const revoked = body.revoke && body.deposit_open ? await revoke(user, body.revoke, body.deposit_open) : null;
        deps.logger.info({ user, connection: current.connection_pubkey, revoked: revoked !== null }, 'sweep removed');
        return { sweep: null, removed_connection: current.connection_pubkey, revoked_connection: revoked };
      }

      const grant = sweepGrant(body.grant, user);
      const secret = hexToBytes(body.connection_secret);
      if (getPublicKey(secret) !== grant.connectionPubkey) throw new ApiRefusal('BAD_REQUEST', 'connection_secret is not the secret of the connection the grant names');
      if (body.revoke) {
        checkRevocation(body.revoke, user, current);
        if (current?.connection_pubkey === grant.connectionPubkey) throw new ApiRefusal('BAD_REQUEST', 'revoke: would revoke the connection being set');
      }
      const { connection } = await registerConnection(
        deps.db,
        deps.wallet.operators,
        deps.servedMethods,
        { authPubkey: user, grantEvent: body.grant, depositOpenEvent: body.deposit_open, servicePubkeyFor: deps.servicePubkeyFor },
        deps.logger,
      );
      deps.onRegistered(connection);
      // Sealed to this connection's wallet service key: only a holder of the master key opens it.
      const sealed = sealConnectionSecret(secret, deps.servicePubkeyFor(connection.pubkey));
      const columns = {
        connection_pubkey: connection.pubkey,
        keep_max_msat: body.policy.keep_max_msat,
        min_sweep_msat: body.policy.min_sweep_msat,
        encrypted_secret: sealed.encryptedSecret,
        encryption_pubkey: sealed.encryptionPubkey,
      };
      // A sweep in flight keeps its claim: no second one starts until it is final.
      await deps.db
        .insertInto('sweep_policies')
        .values({ user_pubkey: user, ...columns })
        .onConflict((oc) => oc.column('user_pubkey').doUpdateSet({ ...columns, updated_at: new Date() }))
        .execute();
      const revoked = body.revoke ? await revoke(user, body.revoke, body.deposit_open) : null;
      deps.logger.info(
        { user, connection: connection.pubkey, destination: grant.destination.type, keep_max_msat: body.policy.keep_max_msat.toString(), min_sweep_msat: body.policy.min_sweep_msat.toString() },
        'sweep set',
      );
      return reply.status(current ? 200 : 201).send({ sweep: await view(user), replaced_connection: current?.connection_pubkey ?? null, revoked_connection: revoked });
    });
  };
}
