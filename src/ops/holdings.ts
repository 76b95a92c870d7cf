import { getPublicKey } from 'nostr-tools/pure';
import { z } from 'zod';
import { signDepositOpen } from '../protocol/user-statements.ts';
import { verifyBalanceUpdate } from '../protocol/vault-proof.ts';
import { HttpVaultClient } from '../vault-client/http-vault-client.ts';

/** What one vault operator holds for a user, as the vault itself says and both channel peers signed. */
export interface Holding {
  operator: string;
  url: string;
  depositId: string | null;
  /** The balance both channel peers signed (0 for a deposit never used); null when unknown. */
  signedMsat: bigint | null;
  seq: number | null;
  /** Held for payments in flight at the vault. */
  reservedMsat: bigint | null;
  locked: boolean | null;
  /** Why the holding could not be read or verified; absent when it was. */
  error?: string;
}

const bridgeInfoSchema = z.object({
  operators: z.array(z.object({ name: z.string(), url: z.string(), node_pubkey: z.string() })),
});

/**
 * Asks every vault operator the bridge names what it holds for the user, with the user's own key
 * (the owner may read its deposits): opens the deposit again (idempotent: the same deposit),
 * reads its status and verifies the balance both channel peers signed against the operator's
 * node key as the bridge pinned it. Independent of the bridge's database: after the database is
 * lost, this shows the money is where it was. Reads only; changes nothing at the bridge.
 */
export async function vaultHoldings(bridgeUrl: string, userKey: Uint8Array): Promise<Holding[]> {
  const response = await fetch(`${bridgeUrl}/api/info`).catch((error: unknown) => {
    throw new Error(`cannot reach ${bridgeUrl}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const info = bridgeInfoSchema.safeParse(await response.json().catch(() => null));
  if (!response.ok || !info.success) throw new Error(`${bridgeUrl}/api/info did not list the vault operators`);
  const owner = getPublicKey(userKey);
  return Promise.all(
    info.data.operators.map(async (op): Promise<Holding> => {
      const base = { operator: op.name, url: op.url, depositId: null, signedMsat: null, seq: null, reservedMsat: null, locked: null };
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
}
