import { getPublicKey } from 'nostr-tools/pure';
import { z } from 'zod';
import { signDepositOpen } from '../protocol/user-statements.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import { HttpVaultClient } from '../vault-client/http-vault-client.ts';
import { V1DepositServiceClient } from '../vault-client/v1-deposit-service.ts';
import { v1SignerFromSecretKey } from '../vault-client/v1-signing.ts';
import { VaultError } from '../vault-client/vault-client.ts';

/** Shown with every v1 holding (docs/vault-api-v1.md). */
export const V1_BALANCE_NOTE = "the operator's word only: v1 has no balance signed by both channel peers";

/**
 * What one vault operator holds for a user, as the vault itself says and both channel peers
 * signed (v0). A v1 operator signs no balance: its holding has `signedMsat` null and the
 * operator's unsigned word in `statedMsat`.
 */
export interface Holding {
  operator: string;
  url: string;
  /** The Vault API the operator speaks: v0 operators are the bridge's; v1 ones only the owner's own tools use. */
  protocol: 'v0' | 'v1';
  /** Null when unknown, or (v1) when the user has no deposit there: none is opened. */
  depositId: string | null;
  /** The balance both channel peers signed (0 for a deposit never used); null when unknown. */
  signedMsat: bigint | null;
  seq: number | null;
  /** Held for payments in flight at the vault. */
  reservedMsat: bigint | null;
  locked: boolean | null;
  /** v1 only: the balance the operator states, signed by nobody (`V1_BALANCE_NOTE`); null for v0, when unknown or without a deposit. */
  statedMsat: bigint | null;
  /** Why the holding could not be read or verified; absent when it was. */
  error?: string;
}

const bridgeInfoSchema = z.object({
  operators: z.array(z.object({ name: z.string(), url: z.string(), node_pubkey: z.string() })),
  // Absent from bridges that predate v1 operators.
  v1_operators: z.array(z.object({ name: z.string(), url: z.string(), node_pubkey: z.string().nullable().default(null) })).default([]),
});

/**
 * Asks every vault operator the bridge names what it holds for the user, with the user's own key
 * (the owner may read its deposits): opens the deposit again (idempotent: the same deposit),
 * reads its status and verifies the balance both channel peers signed against the operator's
 * node key as the bridge pinned it. Independent of the bridge's database: after the database is
 * lost, this shows the money is where it was. Reads only; changes nothing at the bridge.
 *
 * Then the v1 operators the bridge lists (it never uses them): GetDepositStatus signed with the
 * user's own key as the deposit key. No deposit there is shown as none; none is opened.
 */
export async function vaultHoldings(bridgeUrl: string, userKey: Uint8Array): Promise<Holding[]> {
  const response = await fetch(`${bridgeUrl}/api/info`).catch((error: unknown) => {
    throw new Error(`cannot reach ${bridgeUrl}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const info = bridgeInfoSchema.safeParse(await response.json().catch(() => null));
  if (!response.ok || !info.success) throw new Error(`${bridgeUrl}/api/info did not list the vault operators`);
  const owner = getPublicKey(userKey);
  const v0 = Promise.all(
    info.data.operators.map(async (op): Promise<Holding> => {
      const base = { operator: op.name, url: op.url, protocol: 'v0' as const, depositId: null, signedMsat: null, seq: null, reservedMsat: null, locked: null, statedMsat: null };
      const client = new HttpVaultClient({ url: op.url, secretKey: userKey });
      try {
        const vault = await client.info();
        if (vault.operator.node_pubkey !== op.node_pubkey) return { ...base, error: 'the operator answers with another node key than the bridge knows' };
        const deposit = await client.openDeposit(signDepositOpen(userKey));
        const status = await client.depositStatus(deposit.deposit_id);
        const found = { ...base, depositId: deposit.deposit_id, reservedMsat: status.reserved_msat, locked: status.locked };
        if (status.owner !== owner) return { ...found, error: 'the deposit belongs to another key' };
        const update = status.balance_update;
        if (update === null) return status.balance_msat === 0n ? { ...found, signedMsat: 0n, seq: 0 } : { ...found, error: 'a balance without any signed balance update' };
        if (update.deposit_id !== deposit.deposit_id || !verifyBalanceUpdate(update, vault.operator.node_pubkey, vault.peer.node_pubkey).ok) {
          return { ...found, error: 'the balance update does not verify' };
        }
        return { ...found, signedMsat: update.balance_msat, seq: update.seq };
      } catch (error) {
        return { ...base, error: `not reached: ${error instanceof Error ? error.message : String(error)}` };
      }
    }),
  );
  const v1 = Promise.all(info.data.v1_operators.map((op) => v1Holding(op, userKey)));
  return [...(await v0), ...(await v1)];
}

/** A v1 operator's word on the user's deposit: GetDepositStatus only, so a missing deposit stays missing. */
async function v1Holding(op: { name: string; url: string; node_pubkey: string | null }, userKey: Uint8Array): Promise<Holding> {
  const base = { operator: op.name, url: op.url, protocol: 'v1' as const, depositId: null, signedMsat: null, seq: null, reservedMsat: null, locked: null, statedMsat: null };
  const signer = v1SignerFromSecretKey(userKey);
  // The vaults file's pin, when it has one: another node answering at that URL is refused.
  const client = new V1DepositServiceClient({ url: op.url, signers: [signer], ...(op.node_pubkey ? { nodePubkey: op.node_pubkey } : {}) });
  try {
    // The deposit id is the deposit key; the adapter checks the answer is for it.
    const status = await client.depositStatus(signer.pubkey);
    return { ...base, depositId: status.deposit_id, reservedMsat: status.reserved_msat, locked: status.locked, statedMsat: status.balance_msat };
  } catch (error) {
    if (error instanceof VaultError && error.code === 'NOT_FOUND') return base;
    return { ...base, error: `not reached: ${error instanceof Error ? error.message : String(error)}` };
  }
}
