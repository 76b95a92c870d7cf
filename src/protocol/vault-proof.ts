import { z } from 'zod';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { keyAggExport, keyAggregate, sortKeys } from '@scure/btc-signer/musig2.js';
import { msatString, msatToString, type Msat } from './amounts.ts';
import { bytesToHex, compressedPubkeyHex, hex32, hex64, hexToBytes } from './hex.ts';
import { fail, ok, type Result } from './result.ts';
import { signSchnorr, verifySchnorr } from './schnorr.ts';

const Point = secp256k1.Point;
const N = Point.Fn.ORDER;
const utf8 = new TextEncoder();

function taggedMessage(tag: string, fields: readonly (string | number)[]): Uint8Array {
  return schnorr.utils.taggedHash(`deposit-bridge/${tag}`, utf8.encode(JSON.stringify(fields)));
}

function scalarOf(bytes: Uint8Array): bigint {
  return BigInt('0x' + bytesToHex(bytes)) % N;
}

/**
 * A channel peer's vault key: P + H(P ‖ channel_id ‖ vault_id)·G, a public additive tweak of
 * its node key, so anyone holding the node key can recompute it. Returns 33 bytes, compressed.
 */
export function deriveVaultKey(nodePubkey: string, channelId: string, vaultId: string): Uint8Array {
  const tweak = scalarOf(schnorr.utils.taggedHash('deposit-bridge/vault-key', hexToBytes(nodePubkey), hexToBytes(channelId), hexToBytes(vaultId)));
  return Point.fromBytes(hexToBytes(nodePubkey)).add(Point.BASE.multiply(tweak)).toBytes(true);
}

/** The secret matching `deriveVaultKey`, for the peer that owns the node key. */
export function deriveVaultSecret(nodeSecret: Uint8Array, channelId: string, vaultId: string): Uint8Array {
  const nodePubkey = secp256k1.getPublicKey(nodeSecret, true);
  const tweak = scalarOf(schnorr.utils.taggedHash('deposit-bridge/vault-key', nodePubkey, hexToBytes(channelId), hexToBytes(vaultId)));
  const secret = (scalarOf(nodeSecret) + tweak) % N;
  return hexToBytes(secret.toString(16).padStart(64, '0'));
}

/** Vaults whose multisig key is remembered: a few per operator in practice; the oldest is dropped first. */
const MULTISIG_CACHE_SIZE = 4096;
const multisigCache = new Map<string, string>();

/**
 * The vault's 2-of-2 address key: the MuSig2 (BIP-327) aggregate of both peers' vault keys,
 * x-only hex. Keys are sorted first, so the result does not depend on which peer is which.
 */
export function vaultMultisigPubkey(operatorNodePubkey: string, peerNodePubkey: string, channelId: string, vaultId: string): string {
  // A pure function of public values asked again for every invoice of the same vault, and the
  // costliest step of checking a vault proof (two tweaks and a key aggregation in pure JS).
  const cacheKey = `${operatorNodePubkey}:${peerNodePubkey}:${channelId}:${vaultId}`;
  const cached = multisigCache.get(cacheKey);
  if (cached !== undefined) return cached;
  const keys = sortKeys([
    deriveVaultKey(operatorNodePubkey, channelId, vaultId),
    deriveVaultKey(peerNodePubkey, channelId, vaultId),
  ]);
  const multisig = bytesToHex(keyAggExport(keyAggregate(keys)));
  if (multisigCache.size >= MULTISIG_CACHE_SIZE) multisigCache.delete(multisigCache.keys().next().value!);
  multisigCache.set(cacheKey, multisig);
  return multisig;
}

export const vaultProofSchema = z.strictObject({
  deposit_id: z.string().min(1).max(128),
  vault_id: hex32,
  channel_id: hex32,
  multisig_pubkey: hex32,
  operator_node_pubkey: compressedPubkeyHex,
  peer_node_pubkey: compressedPubkeyHex,
  payment_hash: hex32,
  /**
   * The invoice's amount; "0" for an amountless invoice, meaning "any amount": the deposit is
   * credited with what the payer sends (an invoice below the operator's minimum cannot exist,
   * so 0 is never a real amount).
   */
  amount_msat: msatString,
  /** BIP-340 signature by the channel peer's node key over the fields above. */
  peer_sig: hex64,
});
export type VaultProof = z.infer<typeof vaultProofSchema>;
export type VaultProofFields = Omit<VaultProof, 'peer_sig'>;

function proofMessage(p: VaultProofFields): Uint8Array {
  return taggedMessage('vault-proof', [
    p.deposit_id,
    p.vault_id,
    p.channel_id,
    p.multisig_pubkey,
    p.operator_node_pubkey,
    p.peer_node_pubkey,
    p.payment_hash,
    msatToString(p.amount_msat),
  ]);
}

/** The channel peer's side: sign that an invoice pays into this deposit of this vault. */
export function signVaultProof(fields: VaultProofFields, peerNodeSecret: Uint8Array): VaultProof {
  return { ...fields, peer_sig: bytesToHex(signSchnorr(proofMessage(fields), peerNodeSecret)) };
}

/** What the bridge expects a vault invoice to be, from its own records. */
export interface ExpectedVaultInvoice {
  depositId: string;
  operatorNodePubkey: string;
  peerNodePubkey: string;
  paymentHash: string;
  /** The amount asked for; 0n for an amountless invoice ("any amount"). */
  amountMsat: Msat;
  /** The invoice's payee key, recovered from its signature. */
  invoicePayeeNodeKey: string;
  /**
   * The amount written in the BOLT 11 itself (null when amountless), when the caller has the
   * decoded invoice: it must be `amountMsat`, or absent when `amountMsat` is 0n.
   */
  invoiceAmountMsat?: Msat | null;
}

/**
 * Checks a vault proof: it names the expected deposit, payment hash and amount (0n for an
 * amountless invoice: "any amount"); the multisig key is the 2-of-2 of both known peers for
 * this vault and channel; the peer signed it; and the invoice is signed by the operator's node.
 */
export function verifyVaultProof(proof: VaultProof, expected: ExpectedVaultInvoice): Result<void> {
  if (proof.deposit_id !== expected.depositId) return fail('UNAUTHORIZED', 'vault proof names another deposit');
  if (proof.operator_node_pubkey !== expected.operatorNodePubkey || proof.peer_node_pubkey !== expected.peerNodePubkey) {
    return fail('UNAUTHORIZED', 'vault proof names other channel peers');
  }
  if (proof.payment_hash !== expected.paymentHash) return fail('UNAUTHORIZED', 'vault proof is for another payment hash');
  if (proof.amount_msat !== expected.amountMsat) return fail('UNAUTHORIZED', 'vault proof is for another amount');
  if (expected.invoiceAmountMsat !== undefined && (expected.invoiceAmountMsat ?? 0n) !== expected.amountMsat) {
    return fail('UNAUTHORIZED', expected.amountMsat === 0n ? 'an any-amount vault proof for an invoice with an amount' : 'invoice amount differs from the vault proof');
  }
  if (expected.invoicePayeeNodeKey !== expected.operatorNodePubkey) return fail('UNAUTHORIZED', 'invoice is not signed by the operator node');
  const multisig = vaultMultisigPubkey(expected.operatorNodePubkey, expected.peerNodePubkey, proof.channel_id, proof.vault_id);
  if (multisig !== proof.multisig_pubkey) return fail('UNAUTHORIZED', 'vault multisig key does not derive from both peers');
  const peerXonly = hexToBytes(expected.peerNodePubkey).slice(1);
  if (!verifySchnorr(hexToBytes(proof.peer_sig), proofMessage(proof), peerXonly)) {
    return fail('UNAUTHORIZED', 'vault proof is not signed by the channel peer');
  }
  return ok(undefined);
}

/** A deposit balance both channel peers signed: the vault's statement of what the user holds. */
export const balanceUpdateSchema = z.strictObject({
  deposit_id: z.string().min(1).max(128),
  vault_id: hex32,
  channel_id: hex32,
  balance_msat: msatString,
  /** Increases with every change of the deposit's balance. */
  seq: z.number().int().nonnegative(),
  created_at: z.number().int().nonnegative(),
  operator_sig: hex64,
  peer_sig: hex64,
});
export type BalanceUpdate = z.infer<typeof balanceUpdateSchema>;
export type BalanceUpdateFields = Omit<BalanceUpdate, 'operator_sig' | 'peer_sig'>;

function balanceMessage(u: BalanceUpdateFields): Uint8Array {
  return taggedMessage('balance-update', [u.deposit_id, u.vault_id, u.channel_id, msatToString(u.balance_msat), u.seq, u.created_at]);
}

export function signBalanceUpdate(fields: BalanceUpdateFields, operatorNodeSecret: Uint8Array, peerNodeSecret: Uint8Array): BalanceUpdate {
  const message = balanceMessage(fields);
  return {
    ...fields,
    operator_sig: bytesToHex(signSchnorr(message, operatorNodeSecret)),
    peer_sig: bytesToHex(signSchnorr(message, peerNodeSecret)),
  };
}

/**
 * Balance updates already verified, by node keys, message and both signatures: the same update
 * arrives with a payment's outcome, again on the vault's event stream, and again when it is looked
 * up, and only byte-for-byte the same input is taken as verified again.
 */
const verifiedUpdates = new Set<string>();
const VERIFIED_UPDATES_SIZE = 4096;

/** Checks both peers signed the balance update. */
export function verifyBalanceUpdate(update: BalanceUpdate, operatorNodePubkey: string, peerNodePubkey: string): Result<void> {
  const message = balanceMessage(update);
  const seen = `${operatorNodePubkey}:${peerNodePubkey}:${bytesToHex(message)}:${update.operator_sig}:${update.peer_sig}`;
  if (verifiedUpdates.has(seen)) return ok(undefined);
  if (!verifySchnorr(hexToBytes(update.operator_sig), message, hexToBytes(operatorNodePubkey).slice(1))) {
    return fail('UNAUTHORIZED', 'balance update is not signed by the operator');
  }
  if (!verifySchnorr(hexToBytes(update.peer_sig), message, hexToBytes(peerNodePubkey).slice(1))) {
    return fail('UNAUTHORIZED', 'balance update is not signed by the channel peer');
  }
  if (verifiedUpdates.size >= VERIFIED_UPDATES_SIZE) verifiedUpdates.delete(verifiedUpdates.values().next().value!);
  verifiedUpdates.add(seen);
  return ok(undefined);
}
