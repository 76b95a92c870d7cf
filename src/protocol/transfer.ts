/**
 * Transfers between one user's own deposits (docs/multi-vault.md): the destination is an
 * invoice of another vault with its vault proof and an owner attestation, both signed by that
 * vault's channel peer, so the paying vault and the bridge can each check that the money stays
 * with the same user key.
 */
import { schnorr } from '@noble/curves/secp256k1.js';
import { z } from 'zod';
import type { Msat } from './amounts.ts';
import { bytesToHex, hex32, hex64, hexToBytes } from './hex.ts';
import { decodePayableInvoice, type BitcoinNetwork, type DecodedInvoice } from './invoice.ts';
import { fail, ok, type Result } from './result.ts';
import { vaultProofSchema, verifyVaultProof, type VaultProof } from './vault-proof.ts';
import { signSchnorr, verifySchnorr } from './schnorr.ts';

const utf8 = new TextEncoder();

/** The grant capability that lets the bridge move money between the user's deposits on its own. */
export const REBALANCE_CAPABILITY = 'rebalance';

/** The owner attestation: the channel peer says deposit `deposit_id` (of this vault) belongs to `owner`. */
export const ownerAttestationSchema = z.strictObject({ owner: hex32, owner_sig: hex64 });
export type OwnerAttestation = z.infer<typeof ownerAttestationSchema>;

function ownerMessage(depositId: string, owner: string, paymentHash: string): Uint8Array {
  return schnorr.utils.taggedHash('deposit-bridge/deposit-owner', utf8.encode(JSON.stringify([depositId, owner, paymentHash])));
}

/**
 * The channel peer's side: sign that the deposit an invoice pays into is owned by `owner`.
 * Deterministic (BIP-340 with zero auxiliary randomness), so an invoice reads the same each time.
 */
export function signOwnerAttestation(depositId: string, owner: string, paymentHash: string, peerNodeSecret: Uint8Array): OwnerAttestation {
  return { owner, owner_sig: bytesToHex(signSchnorr(ownerMessage(depositId, owner, paymentHash), peerNodeSecret, new Uint8Array(32))) };
}

/** Where a transfer goes: the destination vault's invoice, its proof, and who owns the deposit. */
export const transferDestinationSchema = z.strictObject({
  invoice: z.string().min(1).max(8192),
  proof: vaultProofSchema,
  owner: hex32,
  owner_sig: hex64,
});
export type TransferDestination = z.infer<typeof transferDestinationSchema>;

export interface CheckedDestination {
  invoice: DecodedInvoice;
  proof: VaultProof;
  operatorNodePubkey: string;
}

/**
 * Checks a transfer destination for `owner` as the paying vault (and the bridge) can without
 * asking anyone: the invoice is payable on `network` and signed by the proof's operator node,
 * the proof's multisig key derives from both named peers and the peer signed it, the proof is
 * for this invoice's hash and amount, and the same peer attests the deposit is `owner`'s.
 * Which operators may be a destination is the caller's rule (the grant's `vault_operators`).
 */
export function verifyTransferDestination(
  destination: TransferDestination,
  expected: { owner: string; amountMsat: Msat; network: BitcoinNetwork; nowSec: number; peerNodePubkey?: string; operatorNodePubkey?: string },
): Result<CheckedDestination> {
  const decoded = decodePayableInvoice(destination.invoice, expected.network, expected.nowSec);
  if (!decoded.ok) return decoded;
  const invoice = decoded.value;
  if (invoice.amountMsat !== expected.amountMsat) return fail('BAD_REQUEST', 'the destination invoice is not for the transfer amount');
  const proof = destination.proof;
  if (expected.operatorNodePubkey !== undefined && proof.operator_node_pubkey !== expected.operatorNodePubkey) {
    return fail('UNAUTHORIZED', 'the destination is not at the expected operator');
  }
  if (expected.peerNodePubkey !== undefined && proof.peer_node_pubkey !== expected.peerNodePubkey) {
    return fail('UNAUTHORIZED', 'the destination names another channel peer than the operator has');
  }
  const checked = verifyVaultProof(proof, {
    depositId: proof.deposit_id,
    operatorNodePubkey: proof.operator_node_pubkey,
    peerNodePubkey: proof.peer_node_pubkey,
    paymentHash: invoice.paymentHash,
    amountMsat: expected.amountMsat,
    invoicePayeeNodeKey: invoice.payeeNodeKey,
    invoiceAmountMsat: invoice.amountMsat,
  });
  if (!checked.ok) return checked;
  if (destination.owner !== expected.owner) return fail('UNAUTHORIZED', "the destination deposit is not the same user's");
  const peerXonly = hexToBytes(proof.peer_node_pubkey).slice(1);
  if (!verifySchnorr(hexToBytes(destination.owner_sig), ownerMessage(proof.deposit_id, destination.owner, invoice.paymentHash), peerXonly)) {
    return fail('UNAUTHORIZED', 'the destination owner is not attested by its channel peer');
  }
  return ok({ invoice, proof, operatorNodePubkey: proof.operator_node_pubkey });
}
