import fc from 'fast-check';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { keyAggExport, keyAggregate, nonceAggregate, nonceGen, Session, sortKeys } from '@scure/btc-signer/musig2.js';
import { describe, expect, it } from 'vitest';
import { decodeInvoice } from '../../src/protocol/invoice.ts';
import {
  balanceUpdateSchema,
  deriveVaultKey,
  deriveVaultSecret,
  signBalanceUpdate,
  signVaultProof,
  vaultMultisigPubkey,
  vaultProofSchema,
  verifyBalanceUpdate,
  verifyVaultProof,
  type BalanceUpdate,
  type BalanceUpdateFields,
  type ExpectedVaultInvoice,
  type VaultProof,
  type VaultProofFields,
} from '../../src/protocol/vault-proof.ts';
import { readVector } from '../vectors/generate.ts';

interface VaultKeyVectors {
  cases: {
    name: string;
    operator_node_secret: string;
    operator_node_pubkey: string;
    peer_node_secret: string;
    peer_node_pubkey: string;
    channel_id: string;
    vault_id: string;
    operator_vault_key: string;
    operator_vault_secret: string;
    peer_vault_key: string;
    peer_vault_secret: string;
    multisig_pubkey: string;
  }[];
}

interface VaultProofVectors {
  operator_node_secret: string;
  peer_node_secret: string;
  invoice: string;
  vault_proof: { proof: Record<string, unknown>; message_hash: string };
  balance_update: { update: Record<string, unknown>; message_hash: string };
}

const keyVectors = readVector<VaultKeyVectors>('vault-keys.json');
const proofVectors = readVector<VaultProofVectors>('vault-proofs.json');
const nodePubkey = (secret: Uint8Array) => bytesToHex(secp256k1.getPublicKey(secret, true));
const randomSecret = () => secp256k1.utils.randomSecretKey();
const randomHex32 = () => bytesToHex(randomSecret());

describe('vault keys on the vault-keys vectors', () => {
  it.each(keyVectors.cases)('$name: deriveVaultKey gives the documented tweaked key for both peers', (v) => {
    expect(bytesToHex(deriveVaultKey(v.operator_node_pubkey, v.channel_id, v.vault_id))).toBe(v.operator_vault_key);
    expect(bytesToHex(deriveVaultKey(v.peer_node_pubkey, v.channel_id, v.vault_id))).toBe(v.peer_vault_key);
  });

  it.each(keyVectors.cases)('$name: deriveVaultSecret gives the secret of the derived key', (v) => {
    const operatorSecret = deriveVaultSecret(hexToBytes(v.operator_node_secret), v.channel_id, v.vault_id);
    const peerSecret = deriveVaultSecret(hexToBytes(v.peer_node_secret), v.channel_id, v.vault_id);
    expect(bytesToHex(operatorSecret)).toBe(v.operator_vault_secret);
    expect(bytesToHex(peerSecret)).toBe(v.peer_vault_secret);
    expect(nodePubkey(operatorSecret)).toBe(v.operator_vault_key);
    expect(nodePubkey(peerSecret)).toBe(v.peer_vault_key);
  });

  it.each(keyVectors.cases)('$name: vaultMultisigPubkey is the BIP-327 aggregate, whichever peer is named first', (v) => {
    expect(vaultMultisigPubkey(v.operator_node_pubkey, v.peer_node_pubkey, v.channel_id, v.vault_id)).toBe(v.multisig_pubkey);
    expect(vaultMultisigPubkey(v.peer_node_pubkey, v.operator_node_pubkey, v.channel_id, v.vault_id)).toBe(v.multisig_pubkey);
  });

  it('gives every vault and channel its own keys', () => {
    const keys = keyVectors.cases.map((v) => v.multisig_pubkey);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('vault keys with fresh node keys', () => {
  const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((b) => secp256k1.utils.isValidSecretKey(b));
  const idArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => bytesToHex(b));

  it('deriveVaultKey is the public key of deriveVaultSecret', () => {
    fc.assert(
      fc.property(secretArb, idArb, idArb, (secret, channelId, vaultId) => {
        const derived = deriveVaultKey(nodePubkey(secret), channelId, vaultId);
        expect(derived).toHaveLength(33);
        expect(nodePubkey(deriveVaultSecret(secret, channelId, vaultId))).toBe(bytesToHex(derived));
      }),
      { numRuns: 15 },
    );
  });

  it('vaultMultisigPubkey is symmetric in the two peers and x-only', () => {
    fc.assert(
      fc.property(secretArb, secretArb, idArb, idArb, (a, b, channelId, vaultId) => {
        const ab = vaultMultisigPubkey(nodePubkey(a), nodePubkey(b), channelId, vaultId);
        expect(ab).toMatch(/^[0-9a-f]{64}$/);
        expect(vaultMultisigPubkey(nodePubkey(b), nodePubkey(a), channelId, vaultId)).toBe(ab);
      }),
      { numRuns: 8 },
    );
  });

  it('the two derived vault secrets together make a MuSig2 signature valid under the multisig key', () => {
    const a = randomSecret();
    const b = randomSecret();
    const channelId = randomHex32();
    const vaultId = randomHex32();
    const multisig = vaultMultisigPubkey(nodePubkey(a), nodePubkey(b), channelId, vaultId);
    const secrets = [deriveVaultSecret(a, channelId, vaultId), deriveVaultSecret(b, channelId, vaultId)];
    const keys = sortKeys(secrets.map((s) => secp256k1.getPublicKey(s, true)));
    expect(bytesToHex(keyAggExport(keyAggregate(keys)))).toBe(multisig);
    const message = new TextEncoder().encode('spend the vault output');
    const signers = keys.map((key) => {
      const secret = secrets.find((s) => bytesToHex(secp256k1.getPublicKey(s, true)) === bytesToHex(key))!;
      return { secret, nonces: nonceGen(key, secret, hexToBytes(multisig), message) };
    });
    const session = new Session(
      nonceAggregate(signers.map((s) => s.nonces.public)),
      keys,
      message,
    );
    const signature = session.partialSigAgg(signers.map((s) => session.sign(s.nonces.secret, s.secret)));
    expect(schnorr.verify(signature, message, hexToBytes(multisig))).toBe(true);
  });
});

describe('vault proofs', () => {
  const proof = vaultProofSchema.parse(proofVectors.vault_proof.proof);
  const operatorSecret = hexToBytes(proofVectors.operator_node_secret);
  const peerSecret = hexToBytes(proofVectors.peer_node_secret);
  const invoice = decodeInvoice(proofVectors.invoice);
  if (!invoice.ok) throw new Error('vector invoice does not decode');
  const expected: ExpectedVaultInvoice = {
    depositId: proof.deposit_id,
    operatorNodePubkey: proof.operator_node_pubkey,
    peerNodePubkey: proof.peer_node_pubkey,
    paymentHash: invoice.value.paymentHash,
    amountMsat: invoice.value.amountMsat ?? 0n,
    invoicePayeeNodeKey: invoice.value.payeeNodeKey,
  };
  const fields: VaultProofFields = (({ peer_sig: _sig, ...rest }) => rest)(proof);

  it('parses the vector proof with its amount as a bigint', () => {
    expect(proof.amount_msat).toBe(21_000n);
  });

  it('accepts the vector proof for the invoice it was made for', () => {
    expect(verifyVaultProof(proof, expected)).toEqual({ ok: true, value: undefined });
  });

  it('signVaultProof signs the documented message (tagged hash of the JSON field array)', () => {
    const signed = signVaultProof(fields, peerSecret);
    expect(schnorr.verify(hexToBytes(signed.peer_sig), hexToBytes(proofVectors.vault_proof.message_hash), hexToBytes(proof.peer_node_pubkey).slice(1))).toBe(true);
    expect(verifyVaultProof(signed, expected).ok).toBe(true);
  });

  const otherSecret = randomSecret();
  const resigned = (patch: Partial<VaultProofFields>, secret = peerSecret): VaultProof => signVaultProof({ ...fields, ...patch }, secret);

  it.each<[string, () => [VaultProof, ExpectedVaultInvoice], RegExp]>([
    ['refuses a proof for another deposit', () => [resigned({ deposit_id: 'dep_0002' }), expected], /another deposit/],
    ['refuses a proof naming another operator', () => [resigned({ operator_node_pubkey: nodePubkey(otherSecret) }), expected], /other channel peers/],
    ['refuses a proof naming another peer', () => [resigned({ peer_node_pubkey: nodePubkey(otherSecret) }, otherSecret), expected], /other channel peers/],
    ['refuses a proof for another payment hash', () => [resigned({ payment_hash: randomHex32() }), expected], /another payment hash/],
    ['refuses a proof for another amount', () => [resigned({ amount_msat: 21_001n }), expected], /another amount/],
    ['refuses an invoice not signed by the operator node', () => [proof, { ...expected, invoicePayeeNodeKey: nodePubkey(otherSecret) }], /not signed by the operator/],
    ['refuses a multisig key that does not derive from both peers', () => [resigned({ multisig_pubkey: randomHex32() }), expected], /does not derive/],
    ['refuses a multisig key of another vault id', () => [resigned({ vault_id: randomHex32() }), expected], /does not derive/],
    ['refuses a multisig key of another channel', () => [resigned({ channel_id: randomHex32() }), expected], /does not derive/],
    ['refuses a proof signed by the operator instead of the peer', () => [resigned({}, operatorSecret), expected], /not signed by the channel peer/],
    ['refuses a proof signed by an unrelated key', () => [resigned({}, otherSecret), expected], /not signed by the channel peer/],
    ['refuses a proof whose deposit id was changed after signing', () => [{ ...proof, deposit_id: 'dep_0002' }, { ...expected, depositId: 'dep_0002' }], /not signed by the channel peer/],
    ['refuses a proof whose amount was changed after signing', () => [{ ...proof, amount_msat: 1n }, { ...expected, amountMsat: 1n }], /not signed by the channel peer/],
    [
      'refuses a proof whose payment hash was changed after signing',
      () => {
        const hash = randomHex32();
        return [{ ...proof, payment_hash: hash }, { ...expected, paymentHash: hash }];
      },
      /not signed by the channel peer/,
    ],
    ['refuses a proof with an altered signature', () => [{ ...proof, peer_sig: (proof.peer_sig[0] === '0' ? '1' : '0') + proof.peer_sig.slice(1) }, expected], /not signed by the channel peer/],
  ])('%s', (_, make, reason) => {
    const [p, e] = make();
    const result = verifyVaultProof(p, e);
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
    expect(result.ok ? '' : result.error.message).toMatch(reason);
  });

  it('accepts an any-amount proof ("0") for an amountless invoice when 0n is expected, and only then', () => {
    const anyAmount = resigned({ amount_msat: 0n });
    expect(verifyVaultProof(anyAmount, { ...expected, amountMsat: 0n })).toEqual({ ok: true, value: undefined });
    expect(verifyVaultProof(anyAmount, { ...expected, amountMsat: 0n, invoiceAmountMsat: null }).ok).toBe(true);
    expect(verifyVaultProof(anyAmount, expected)).toMatchObject({ ok: false, error: { message: expect.stringMatching(/another amount/) } });
    // An any-amount proof handed out with an invoice that does carry an amount is refused.
    expect(verifyVaultProof(anyAmount, { ...expected, amountMsat: 0n, invoiceAmountMsat: 21_000n })).toMatchObject({
      ok: false,
      error: { code: 'UNAUTHORIZED', message: expect.stringMatching(/any-amount vault proof for an invoice with an amount/) },
    });
    expect(verifyVaultProof(proof, { ...expected, invoiceAmountMsat: 21_000n }).ok).toBe(true);
    expect(verifyVaultProof(proof, { ...expected, invoiceAmountMsat: null })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/differs from the vault proof/) } });
  });

  it('refuses on the wire a proof whose amount is a JSON number', () => {
    expect(vaultProofSchema.safeParse({ ...proofVectors.vault_proof.proof, amount_msat: 21000 }).success).toBe(false);
  });

  it('refuses on the wire a proof with an unknown field', () => {
    expect(vaultProofSchema.safeParse({ ...proofVectors.vault_proof.proof, note: 'trust me' }).success).toBe(false);
  });
});

describe('balance updates', () => {
  const update = balanceUpdateSchema.parse(proofVectors.balance_update.update);
  const operatorSecret = hexToBytes(proofVectors.operator_node_secret);
  const peerSecret = hexToBytes(proofVectors.peer_node_secret);
  const operator = nodePubkey(operatorSecret);
  const peer = nodePubkey(peerSecret);
  const fields: BalanceUpdateFields = (({ operator_sig: _o, peer_sig: _p, ...rest }) => rest)(update);

  it('accepts the vector update signed by both peers', () => {
    expect(verifyBalanceUpdate(update, operator, peer)).toEqual({ ok: true, value: undefined });
  });

  it('signBalanceUpdate signs the documented message with both node keys', () => {
    const signed = signBalanceUpdate(fields, operatorSecret, peerSecret);
    const message = hexToBytes(proofVectors.balance_update.message_hash);
    expect(schnorr.verify(hexToBytes(signed.operator_sig), message, hexToBytes(operator).slice(1))).toBe(true);
    expect(schnorr.verify(hexToBytes(signed.peer_sig), message, hexToBytes(peer).slice(1))).toBe(true);
    expect(verifyBalanceUpdate(signed, operator, peer).ok).toBe(true);
  });

  const other = randomSecret();

  it.each<[string, () => BalanceUpdate, RegExp]>([
    ['refuses an update the peer signed twice', () => ({ ...update, operator_sig: update.peer_sig }), /not signed by the operator/],
    ['refuses an update the operator signed twice', () => ({ ...update, peer_sig: update.operator_sig }), /not signed by the channel peer/],
    ['refuses an update with the signatures swapped', () => ({ ...update, operator_sig: update.peer_sig, peer_sig: update.operator_sig }), /not signed by the operator/],
    ['refuses an update whose operator signature is by an unrelated key', () => signBalanceUpdate(fields, other, peerSecret), /not signed by the operator/],
    ['refuses an update whose peer signature is by an unrelated key', () => signBalanceUpdate(fields, operatorSecret, other), /not signed by the channel peer/],
  ])('%s', (_, make, reason) => {
    const result = verifyBalanceUpdate(make(), operator, peer);
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
    expect(result.ok ? '' : result.error.message).toMatch(reason);
  });

  it.each<[string, Partial<BalanceUpdateFields>]>([
    ['deposit_id', { deposit_id: 'dep_0002' }],
    ['vault_id', { vault_id: randomHex32() }],
    ['channel_id', { channel_id: randomHex32() }],
    ['balance_msat', { balance_msat: 21_001n }],
    ['seq', { seq: 2 }],
    ['created_at', { created_at: update.created_at + 1 }],
  ])('refuses an update whose %s changed after signing', (_, patch) => {
    const result = verifyBalanceUpdate({ ...update, ...patch }, operator, peer);
    expect(result.ok ? 'accepted' : result.error.code).toBe('UNAUTHORIZED');
  });

  it('refuses an update checked against another operator', () => {
    expect(verifyBalanceUpdate(update, nodePubkey(other), peer).ok).toBe(false);
  });

  it('remembers only the exact update and keys it verified: the same update with the roles swapped still fails', () => {
    expect(verifyBalanceUpdate(update, operator, peer).ok).toBe(true);
    expect(verifyBalanceUpdate(update, operator, peer).ok).toBe(true);
    expect(verifyBalanceUpdate(update, peer, operator).ok).toBe(false);
    expect(verifyBalanceUpdate({ ...update, seq: update.seq + 1 }, operator, peer).ok).toBe(false);
  });

  it('refuses on the wire a balance written as a JSON number', () => {
    expect(balanceUpdateSchema.safeParse({ ...proofVectors.balance_update.update, balance_msat: 21000 }).success).toBe(false);
  });
});
