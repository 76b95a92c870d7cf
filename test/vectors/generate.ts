/**
 * Regenerates the protocol test vectors in test/vectors/*.json:
 *
 *     node_modules/.bin/node test/vectors/generate.ts
 *
 * Every input is fixed (secret keys derived from labels, timestamps, BIP-340 aux data, NIP-44
 * nonces, NIP-04 IVs) and BOLT 11 signing is RFC 6979 deterministic, so the output is the same
 * byte for byte on every run; test/protocol/vectors.test.ts checks that the checked-in files are
 * exactly what this script produces.
 *
 * Expected values are computed here from the specifications (docs/vault-api.md, NIP-01, NIP-04,
 * NIP-44, BIP-340, BIP-327, BOLT 11) with the cryptographic libraries directly, never with
 * src/protocol, and expected outcomes are written by hand: the vectors check the code under
 * test instead of echoing it.
 *
 * The helpers are exported for the tests, which also build cases from fresh random keys.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cbc } from '@noble/ciphers/aes.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { base64 } from '@scure/base';
import { v2 as nip44 } from 'nostr-tools/nip44';
import type { Event, EventTemplate } from 'nostr-tools/pure';
import type * as Bolt11 from 'bolt11';

const utf8 = new TextEncoder();

// bolt11 (with bitcoinjs-lib) is loaded on first use, so test files that only read vectors
// do not pay for it.
const requireCjs = createRequire(import.meta.url);
let bolt11Module: typeof Bolt11 | undefined;
function bolt11(): typeof Bolt11 {
  bolt11Module ??= requireCjs('bolt11');
  return bolt11Module!;
}
const Point = secp256k1.Point;
const N = Point.Fn.ORDER;

// ---------------------------------------------------------------------------------------------
// Keys, events, invoices
// ---------------------------------------------------------------------------------------------

/** A fixed secret key for a label: SHA-256 of a fixed prefix and the label. */
export function fixedSecret(label: string): Uint8Array {
  const key = sha256(utf8.encode(`deposit-bridge test vector key: ${label}`));
  const scalar = BigInt('0x' + bytesToHex(key));
  if (scalar === 0n || scalar >= N) throw new Error(`label ${label} gives an invalid secret key`);
  return key;
}

/** x-only public key (Nostr), hex. */
export function xonlyOf(secret: Uint8Array): string {
  return bytesToHex(schnorr.getPublicKey(secret));
}

/** Compressed public key (Lightning node key), hex. */
export function nodePubkeyOf(secret: Uint8Array): string {
  return bytesToHex(secp256k1.getPublicKey(secret, true));
}

/** BIP-340 aux data used for every vector signature, so signatures are reproducible. */
export const FIXED_AUX = sha256(utf8.encode('deposit-bridge test vector aux'));

/** NIP-01 event id, computed from the serialization the NIP defines. */
export function eventId(pubkey: string, t: EventTemplate): string {
  return bytesToHex(sha256(utf8.encode(JSON.stringify([0, pubkey, t.created_at, t.kind, t.tags, t.content]))));
}

/** A signed Nostr event with a deterministic BIP-340 signature (fixed aux data). */
export function signEventFixed(t: EventTemplate, secret: Uint8Array): Event {
  const pubkey = xonlyOf(secret);
  const id = eventId(pubkey, t);
  const sig = bytesToHex(schnorr.sign(hexToBytes(id), secret, FIXED_AUX));
  return { id, pubkey, created_at: t.created_at, kind: t.kind, tags: t.tags, content: t.content, sig };
}

/** bolt11's network objects (signet is not built in). */
export const BOLT11_NETWORKS = {
  mainnet: { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] },
  testnet: { bech32: 'tb', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  signet: { bech32: 'tbs', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  regtest: { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
} as const;
export type VectorNetwork = keyof typeof BOLT11_NETWORKS;

export interface InvoiceSpec {
  network: VectorNetwork;
  nodeSecret: Uint8Array;
  /** Omit for an amountless invoice. */
  amountMsat?: bigint;
  paymentHash: string;
  paymentSecret?: string;
  timestamp: number;
  description?: string;
  descriptionHash?: string;
  expirySeconds?: number;
  basicMpp?: boolean;
}

/** A BOLT 11 invoice encoded and signed with bolt11 (RFC 6979: deterministic). */
export function makeInvoice(spec: InvoiceSpec): string {
  const tags: { tagName: string; data: unknown }[] = [{ tagName: 'payment_hash', data: spec.paymentHash }];
  if (spec.paymentSecret !== undefined) {
    tags.push({ tagName: 'payment_secret', data: spec.paymentSecret });
    tags.push({
      tagName: 'feature_bits',
      data: {
        word_length: 4,
        var_onion_optin: { required: false, supported: true },
        payment_secret: { required: true, supported: true },
        basic_mpp: { required: false, supported: spec.basicMpp === true },
      },
    });
  }
  if (spec.descriptionHash !== undefined) tags.push({ tagName: 'purpose_commit_hash', data: spec.descriptionHash });
  else tags.push({ tagName: 'description', data: spec.description ?? '' });
  tags.push({ tagName: 'expire_time', data: spec.expirySeconds ?? 3600 });
  const encoded = bolt11().encode({
    network: { ...BOLT11_NETWORKS[spec.network], validWitnessVersions: [0, 1] },
    timestamp: spec.timestamp,
    ...(spec.amountMsat === undefined ? {} : { millisatoshis: spec.amountMsat.toString() }),
    tags: tags as never,
  });
  const signed = bolt11().sign(encoded, bytesToHex(spec.nodeSecret));
  if (!signed.paymentRequest) throw new Error('bolt11 did not sign the invoice');
  return signed.paymentRequest;
}

/** A 32-byte hex value derived from a label (payment hashes, ids). */
export function fixedHex32(label: string): string {
  return bytesToHex(sha256(utf8.encode(`deposit-bridge test vector value: ${label}`)));
}

// ---------------------------------------------------------------------------------------------
// Independent implementations of what src/protocol computes
// ---------------------------------------------------------------------------------------------

/** BIP-340 tagged hash. */
function taggedHash(tag: string, ...messages: Uint8Array[]): Uint8Array {
  const tagHash = sha256(utf8.encode(tag));
  return sha256(concatBytes(tagHash, tagHash, ...messages));
}

function scalar(bytes: Uint8Array): bigint {
  return BigInt('0x' + bytesToHex(bytes)) % N;
}

function scalarHex(s: bigint): string {
  return s.toString(16).padStart(64, '0');
}

/** docs/vault-api.md: derive(P) = P + H(P ‖ channel_id ‖ vault_id)·G, H tagged `deposit-bridge/vault-key`. */
function vaultKeyTweak(nodePubkey: Uint8Array, channelId: string, vaultId: string): bigint {
  return scalar(taggedHash('deposit-bridge/vault-key', nodePubkey, hexToBytes(channelId), hexToBytes(vaultId)));
}

/** BIP-327 KeyAgg of plain (33-byte) keys in the given order; returns the x-only aggregate, hex. */
export function bip327KeyAgg(keys: readonly Uint8Array[]): string {
  const list = taggedHash('KeyAgg list', ...keys);
  const first = keys[0];
  const second = keys.find((k) => first === undefined || bytesToHex(k) !== bytesToHex(first));
  let q = Point.ZERO;
  for (const key of keys) {
    const a = second !== undefined && bytesToHex(key) === bytesToHex(second) ? 1n : scalar(taggedHash('KeyAgg coefficient', list, key));
    q = q.add(Point.fromBytes(key).multiply(a));
  }
  return bytesToHex(q.toBytes(true).slice(1));
}

/** BIP-327 KeySort: lexicographic order of the 33-byte keys. */
function keySort(keys: readonly Uint8Array[]): Uint8Array[] {
  return [...keys].sort((a, b) => (bytesToHex(a) < bytesToHex(b) ? -1 : bytesToHex(a) > bytesToHex(b) ? 1 : 0));
}

// One BIP-327 key_agg_vectors.json case, to prove `bip327KeyAgg` before trusting its output.
const BIP327_KEYS = [
  '02F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9',
  '03DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659',
  '023590A94E768F8E1815C2F24B4D80A8E3149316C3518CE7B7AD338368D038CA66',
];
const BIP327_EXPECTED = '90539EEDE565F5D054F32CC0C220126889ED1E5D193BAF15AEF344FE59D4610C';

/** docs/vault-api.md: the signed message of a vault proof or balance update. */
function statementHash(tag: 'vault-proof' | 'balance-update', fields: readonly (string | number)[]): Uint8Array {
  return taggedHash(`deposit-bridge/${tag}`, utf8.encode(JSON.stringify(fields)));
}

/** NIP-44 v2 conversation key: HKDF-extract(salt = "nip44-v2", IKM = ECDH x) = HMAC-SHA256(salt, IKM). */
function nip44ConversationKey(secret: Uint8Array, peerXonly: string): Uint8Array {
  const sharedX = secp256k1.getSharedSecret(secret, hexToBytes('02' + peerXonly)).slice(1, 33);
  return hmac(sha256, utf8.encode('nip44-v2'), sharedX);
}

/** NIP-04 shared secret: the x coordinate of the ECDH point. */
function nip04SharedSecret(secret: Uint8Array, peerXonly: string): Uint8Array {
  return secp256k1.getSharedSecret(secret, hexToBytes('02' + peerXonly)).slice(1, 33);
}

/** NIP-04 payload with a given IV: base64(AES-256-CBC(plaintext)) + "?iv=" + base64(iv). */
export function nip04EncryptWithIv(sharedSecret: Uint8Array, plaintext: string, iv: Uint8Array): string {
  const ciphertext = cbc(sharedSecret, iv).encrypt(utf8.encode(plaintext));
  return `${base64.encode(ciphertext)}?iv=${base64.encode(iv)}`;
}

function fixedBytes(label: string, length: number): Uint8Array {
  return sha256(utf8.encode(`deposit-bridge test vector bytes: ${label}`)).slice(0, length);
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

/** 2026-01-01T00:00:00Z: the clock of every vector. */
export const VECTOR_NOW = 1_767_225_600;

function vaultKeysVectors() {
  const bip327 = bip327KeyAgg(BIP327_KEYS.map((k) => hexToBytes(k.toLowerCase())));
  if (bip327 !== BIP327_EXPECTED.toLowerCase()) throw new Error('own BIP-327 KeyAgg does not match the BIP-327 vector');

  const cases = [
    { name: 'first vault of channel 1', operator: 'operator-node-a', peer: 'peer-node-b', channel: 'channel-1', vault: 'vault-1' },
    { name: 'second vault of the same channel', operator: 'operator-node-a', peer: 'peer-node-b', channel: 'channel-1', vault: 'vault-2' },
    { name: 'another channel, peers swapped', operator: 'peer-node-b', peer: 'operator-node-a', channel: 'channel-2', vault: 'vault-1' },
    { name: 'other operator and peer', operator: 'operator-node-c', peer: 'peer-node-d', channel: 'channel-3', vault: 'vault-3' },
  ].map((c) => {
    const operatorSecret = fixedSecret(c.operator);
    const peerSecret = fixedSecret(c.peer);
    const channelId = fixedHex32(c.channel);
    const vaultId = fixedHex32(c.vault);
    const derive = (secret: Uint8Array) => {
      const pub = secp256k1.getPublicKey(secret, true);
      const tweak = vaultKeyTweak(pub, channelId, vaultId);
      const key = Point.fromBytes(pub).add(Point.BASE.multiply(tweak)).toBytes(true);
      const vaultSecret = (scalar(secret) + tweak) % N;
      return { key, vaultSecret };
    };
    const op = derive(operatorSecret);
    const peer = derive(peerSecret);
    return {
      name: c.name,
      operator_node_secret: bytesToHex(operatorSecret),
      operator_node_pubkey: nodePubkeyOf(operatorSecret),
      peer_node_secret: bytesToHex(peerSecret),
      peer_node_pubkey: nodePubkeyOf(peerSecret),
      channel_id: channelId,
      vault_id: vaultId,
      operator_vault_key: bytesToHex(op.key),
      operator_vault_secret: scalarHex(op.vaultSecret),
      peer_vault_key: bytesToHex(peer.key),
      peer_vault_secret: scalarHex(peer.vaultSecret),
      multisig_pubkey: bip327KeyAgg(keySort([op.key, peer.key])),
    };
  });
  return {
    description:
      'Vault keys (docs/vault-api.md, "Who is who"): derive(P) = P + H(P || channel_id || vault_id)*G with the BIP-340 tagged hash "deposit-bridge/vault-key"; multisig_pubkey = BIP-327 KeyAgg of KeySort(derive(N_A), derive(N_B)), x-only.',
    cases,
  };
}

function vaultProofVectors() {
  const operatorSecret = fixedSecret('operator-node-a');
  const peerSecret = fixedSecret('peer-node-b');
  const channelId = fixedHex32('channel-1');
  const vaultId = fixedHex32('vault-1');
  const operatorPub = secp256k1.getPublicKey(operatorSecret, true);
  const peerPub = secp256k1.getPublicKey(peerSecret, true);
  const vaultKey = (pub: Uint8Array) => Point.fromBytes(pub).add(Point.BASE.multiply(vaultKeyTweak(pub, channelId, vaultId))).toBytes(true);
  const multisig = bip327KeyAgg(keySort([vaultKey(operatorPub), vaultKey(peerPub)]));

  const proofFields = {
    deposit_id: 'dep_0001',
    vault_id: vaultId,
    channel_id: channelId,
    multisig_pubkey: multisig,
    operator_node_pubkey: bytesToHex(operatorPub),
    peer_node_pubkey: bytesToHex(peerPub),
    payment_hash: fixedHex32('payment-1'),
    amount_msat: '21000',
  };
  const proofHash = statementHash('vault-proof', [
    proofFields.deposit_id,
    proofFields.vault_id,
    proofFields.channel_id,
    proofFields.multisig_pubkey,
    proofFields.operator_node_pubkey,
    proofFields.peer_node_pubkey,
    proofFields.payment_hash,
    proofFields.amount_msat,
  ]);
  const invoice = makeInvoice({
    network: 'regtest',
    nodeSecret: operatorSecret,
    amountMsat: 21_000n,
    paymentHash: proofFields.payment_hash,
    paymentSecret: fixedHex32('payment-secret-1'),
    timestamp: VECTOR_NOW,
    description: 'deposit',
    basicMpp: true,
  });

  const updateFields = {
    deposit_id: 'dep_0001',
    vault_id: vaultId,
    channel_id: channelId,
    balance_msat: '21000',
    seq: 1,
    created_at: VECTOR_NOW + 5,
  };
  const updateHash = statementHash('balance-update', [
    updateFields.deposit_id,
    updateFields.vault_id,
    updateFields.channel_id,
    updateFields.balance_msat,
    updateFields.seq,
    updateFields.created_at,
  ]);
  return {
    description:
      'A vault proof signed by the channel peer and a balance update signed by both peers (docs/vault-api.md, "Signed statements"): BIP-340 signatures over the tagged hash ("deposit-bridge/vault-proof", "deposit-bridge/balance-update") of the JSON array of the fields in order. Signatures use fixed aux data (aux_rand).',
    aux_rand: bytesToHex(FIXED_AUX),
    operator_node_secret: bytesToHex(operatorSecret),
    peer_node_secret: bytesToHex(peerSecret),
    invoice,
    vault_proof: {
      proof: { ...proofFields, peer_sig: bytesToHex(schnorr.sign(proofHash, peerSecret, FIXED_AUX)) },
      message_hash: bytesToHex(proofHash),
    },
    balance_update: {
      update: {
        ...updateFields,
        operator_sig: bytesToHex(schnorr.sign(updateHash, operatorSecret, FIXED_AUX)),
        peer_sig: bytesToHex(schnorr.sign(updateHash, peerSecret, FIXED_AUX)),
      },
      message_hash: bytesToHex(updateHash),
    },
  };
}

function nwcEncryptionVectors() {
  // The second pair is picked so that B's full public key has an odd y, which NIP-04 and NIP-44
  // must ignore (both lift the x-only key with an even y).
  const oddLabel = (() => {
    for (let i = 0; ; i++) {
      const label = `nwc-peer-odd-${i}`;
      if (nodePubkeyOf(fixedSecret(label)).startsWith('03')) return label;
    }
  })();
  const evenLabel = (() => {
    for (let i = 0; ; i++) {
      const label = `nwc-peer-even-${i}`;
      if (nodePubkeyOf(fixedSecret(label)).startsWith('02')) return label;
    }
  })();
  const pairs = [
    { name: 'app and wallet service (peer key with even y)', a: 'nwc-app', b: evenLabel, plaintext: '{"method":"get_balance","params":{}}' },
    {
      name: 'app and wallet service (peer key with odd y), non-ASCII plaintext',
      a: 'nwc-app-2',
      b: oddLabel,
      plaintext: '{"method":"make_invoice","params":{"amount":21000,"description":"☕ café"}}',
    },
  ];
  return {
    description:
      'NWC content encryption between two keys: NIP-44 v2 (conversation key = HKDF-extract(salt "nip44-v2", ECDH x)) with a fixed nonce, and NIP-04 (AES-256-CBC under the ECDH x coordinate) with a fixed IV.',
    cases: pairs.map((p) => {
      const a = fixedSecret(p.a);
      const b = fixedSecret(p.b);
      const conversationKey = nip44ConversationKey(a, xonlyOf(b));
      const shared = nip04SharedSecret(a, xonlyOf(b));
      const nonce = fixedBytes(`${p.name} nonce`, 32);
      const iv = fixedBytes(`${p.name} iv`, 16);
      return {
        name: p.name,
        secret_a: bytesToHex(a),
        pubkey_a: xonlyOf(a),
        secret_b: bytesToHex(b),
        pubkey_b: xonlyOf(b),
        pubkey_b_compressed: nodePubkeyOf(b),
        nip44_conversation_key: bytesToHex(conversationKey),
        nip04_shared_secret: bytesToHex(shared),
        plaintext: p.plaintext,
        nip44: { nonce: bytesToHex(nonce), payload: nip44.encrypt(p.plaintext, conversationKey, nonce) },
        nip04: { iv: bytesToHex(iv), payload: nip04EncryptWithIv(shared, p.plaintext, iv) },
      };
    }),
  };
}

// --- grants and authorizations ---------------------------------------------------------------

interface GrantContentInput {
  connection: string;
  name?: string;
  methods?: string[];
  budget?: { amount_msat: string; renewal: string } | null;
  max_amount_msat?: string | null;
  fee_limit?: { base_msat: string; ppm: number };
  expires_at?: number | null;
  vault_operators?: string[] | null;
  revoked?: boolean;
}

/** Grant content as docs/vault-api.md writes it, keys in the documented order. */
function grantContent(c: GrantContentInput): Record<string, unknown> {
  return {
    v: 1,
    connection: c.connection,
    name: c.name ?? 'Vector app',
    methods: c.methods ?? ['get_info', 'get_balance', 'pay_invoice'],
    budget: c.budget === undefined ? { amount_msat: '100000000', renewal: 'monthly' } : c.budget,
    max_amount_msat: c.max_amount_msat === undefined ? '50000000' : c.max_amount_msat,
    fee_limit: c.fee_limit ?? { base_msat: '10000', ppm: 10000 },
    expires_at: c.expires_at === undefined ? null : c.expires_at,
    vault_operators: c.vault_operators === undefined ? null : c.vault_operators,
    revoked: c.revoked ?? false,
  };
}

function grantEvent(content: Record<string, unknown> | string, user: Uint8Array, opts: { kind?: number; d?: string | null; createdAt?: number } = {}): Event {
  const connection = typeof content === 'string' ? '' : String(content.connection);
  const d = opts.d === undefined ? connection : opts.d;
  const tags = d === null ? [['p', connection]] : [['d', d], ['p', connection]];
  return signEventFixed(
    {
      kind: opts.kind ?? 31347,
      created_at: opts.createdAt ?? VECTOR_NOW - 86_400,
      tags,
      content: typeof content === 'string' ? content : JSON.stringify(content),
    },
    user,
  );
}

function flipHexChar(hex: string, index = 0): string {
  const c = hex[index] === '0' ? '1' : '0';
  return hex.slice(0, index) + c + hex.slice(index + 1);
}

function grantVectors() {
  const user = fixedSecret('user');
  const connection = xonlyOf(fixedSecret('connection'));
  const operator = nodePubkeyOf(fixedSecret('operator-node-a'));
  const full = grantContent({
    connection,
    name: 'Alby Go',
    methods: ['get_info', 'get_balance', 'make_invoice', 'pay_invoice', 'lookup_invoice', 'list_transactions'],
    budget: { amount_msat: '100000000', renewal: 'weekly' },
    max_amount_msat: '50000000',
    fee_limit: { base_msat: '2000', ppm: 5000 },
    expires_at: VECTOR_NOW + 30 * 86_400,
    vault_operators: [operator],
  });
  const minimal = grantContent({ connection, name: '', methods: ['get_info'], budget: null, max_amount_msat: null });
  const fullEvent = grantEvent(full, user);
  const invalid = (name: string, event: Event, code: string) => ({ name, event, expected: { ok: false, code } });
  const withContent = (patch: Record<string, unknown>) => grantEvent({ ...full, ...patch }, user);
  const withoutField = (field: string) => {
    const copy: Record<string, unknown> = { ...full };
    delete copy[field];
    return grantEvent(copy, user);
  };
  return {
    description:
      'Grant events (kind 31347, docs/vault-api.md "Grant content") and what parsing them must give: the terms, or a refusal code. Amounts in expected terms are decimal strings of msats.',
    user_pubkey: xonlyOf(user),
    valid: [
      {
        name: 'parses a grant with every limit set',
        event: fullEvent,
        expected: {
          ok: true,
          grant: {
            userPubkey: xonlyOf(user),
            connectionPubkey: connection,
            name: 'Alby Go',
            methods: full.methods,
            budget: { amountMsat: '100000000', renewal: 'weekly' },
            maxAmountMsat: '50000000',
            feeLimit: { baseMsat: '2000', ppm: 5000 },
            expiresAt: VECTOR_NOW + 30 * 86_400,
            vaultOperators: [operator],
            velocity: null,
            revoked: false,
            createdAt: VECTOR_NOW - 86_400,
          },
        },
      },
      {
        name: 'parses a grant with no budget, no maximum, no expiry and every operator',
        event: grantEvent(minimal, user),
        expected: {
          ok: true,
          grant: {
            userPubkey: xonlyOf(user),
            connectionPubkey: connection,
            name: '',
            methods: ['get_info'],
            budget: null,
            maxAmountMsat: null,
            feeLimit: { baseMsat: '10000', ppm: 10000 },
            expiresAt: null,
            vaultOperators: null,
            velocity: null,
            revoked: false,
            createdAt: VECTOR_NOW - 86_400,
          },
        },
      },
      {
        name: 'parses a revocation as a grant (revocation is judged by grantInForce)',
        event: grantEvent(grantContent({ connection, revoked: true }), user, { createdAt: VECTOR_NOW - 10 }),
        expected: { ok: true, revoked: true },
      },
    ],
    invalid: [
      invalid('refuses an event of another kind', grantEvent(full, user, { kind: 30078 }), 'UNAUTHORIZED'),
      invalid('refuses a grant whose content was changed after signing', { ...fullEvent, content: JSON.stringify({ ...full, max_amount_msat: '900000000' }) }, 'UNAUTHORIZED'),
      invalid('refuses a grant whose signature was altered', { ...fullEvent, sig: flipHexChar(fullEvent.sig, 10) }, 'UNAUTHORIZED'),
      invalid('refuses a grant whose id was altered', { ...fullEvent, id: flipHexChar(fullEvent.id, 5) }, 'UNAUTHORIZED'),
      invalid('refuses a grant whose pubkey is not the signer', { ...fullEvent, pubkey: xonlyOf(fixedSecret('intruder')) }, 'UNAUTHORIZED'),
      invalid('refuses a grant whose d tag is another key', grantEvent(full, user, { d: xonlyOf(fixedSecret('intruder')) }), 'BAD_REQUEST'),
      invalid('refuses a grant without a d tag', grantEvent(full, user, { d: null }), 'BAD_REQUEST'),
      invalid('refuses content that is not JSON', grantEvent('{"v":1,', user, { d: connection }), 'BAD_REQUEST'),
      invalid('refuses content with an unknown field', withContent({ spend_everything: true }), 'BAD_REQUEST'),
      invalid('refuses content without the revoked field', withoutField('revoked'), 'BAD_REQUEST'),
      invalid('refuses another content version', withContent({ v: 2 }), 'BAD_REQUEST'),
      invalid('refuses a budget amount written as a JSON number', withContent({ budget: { amount_msat: 100000000, renewal: 'monthly' } }), 'BAD_REQUEST'),
      invalid('refuses a maximum with a leading zero', withContent({ max_amount_msat: '050000000' }), 'BAD_REQUEST'),
      invalid('refuses a negative maximum', withContent({ max_amount_msat: '-1' }), 'BAD_REQUEST'),
      invalid('refuses a decimal fee base', withContent({ fee_limit: { base_msat: '10.5', ppm: 10000 } }), 'BAD_REQUEST'),
      invalid('refuses a budget above all bitcoin', withContent({ budget: { amount_msat: '2100000000000000001', renewal: 'monthly' } }), 'BAD_REQUEST'),
      invalid('refuses a fee ppm above one million', withContent({ fee_limit: { base_msat: '10000', ppm: 1000001 } }), 'BAD_REQUEST'),
      invalid('refuses a fractional fee ppm', withContent({ fee_limit: { base_msat: '10000', ppm: 0.5 } }), 'BAD_REQUEST'),
      invalid('refuses an unknown budget renewal', withContent({ budget: { amount_msat: '1000', renewal: 'hourly' } }), 'BAD_REQUEST'),
      invalid('refuses a method name with capitals', withContent({ methods: ['PAY_INVOICE'] }), 'BAD_REQUEST'),
      invalid('refuses an expiry of zero', withContent({ expires_at: 0 }), 'BAD_REQUEST'),
      invalid('refuses a connection key in uppercase hex', grantEvent({ ...full, connection: connection.toUpperCase() }, user, { d: connection.toUpperCase() }), 'BAD_REQUEST'),
      invalid('refuses a vault operator given as an x-only key', withContent({ vault_operators: [operator.slice(2)] }), 'BAD_REQUEST'),
      invalid('refuses revoked written as a string', withContent({ revoked: 'false' }), 'BAD_REQUEST'),
    ],
  };
}

interface RequestSpec {
  body: unknown;
  encryption: 'nip44_v2' | 'nip04' | 'none-tag-nip04';
  signer?: Uint8Array;
  createdAt?: number;
  kind?: number;
  expiration?: number;
  /** The encryption key; the (connection, wallet service) key by default. */
  encryptTo?: Uint8Array;
  label: string;
}

function authorizationVectors() {
  const user = fixedSecret('user');
  const connectionSecret = fixedSecret('connection');
  const connection = xonlyOf(connectionSecret);
  const service = fixedSecret('wallet-service');
  const intruder = fixedSecret('intruder');
  const operatorSecret = fixedSecret('operator-node-a');
  const operator = nodePubkeyOf(operatorSecret);
  const otherOperator = nodePubkeyOf(fixedSecret('operator-node-c'));
  const payee = fixedSecret('payee-node');
  const now = VECTOR_NOW + 3_600;

  const invoiceOf = (label: string, amountMsat: bigint | undefined, network: VectorNetwork = 'regtest') =>
    makeInvoice({
      network,
      nodeSecret: payee,
      ...(amountMsat === undefined ? {} : { amountMsat }),
      paymentHash: fixedHex32(`auth ${label} hash`),
      paymentSecret: fixedHex32(`auth ${label} secret`),
      timestamp: now - 120,
      description: `vector ${label}`,
    });
  const invoice = invoiceOf('main', 50_000n);
  const otherInvoice = invoiceOf('other', 50_000n);
  const amountless = invoiceOf('amountless', undefined);

  const grant = grantEvent(grantContent({ connection, methods: ['get_info', 'get_balance', 'pay_invoice'] }), user);
  const serviceKeyFor = (scheme: 'nip44_v2' | 'nip04', encryptTo?: Uint8Array) =>
    scheme === 'nip44_v2' ? nip44ConversationKey(encryptTo ?? service, connection) : nip04SharedSecret(encryptTo ?? service, connection);

  const request = (spec: RequestSpec): Event => {
    const scheme = spec.encryption === 'nip44_v2' ? 'nip44_v2' : 'nip04';
    // The app encrypts with its own secret and the service pubkey; ECDH makes it the same key
    // the service computes (checked by the nwc-encryption vectors).
    const key = scheme === 'nip44_v2' ? nip44ConversationKey(connectionSecret, xonlyOf(spec.encryptTo ?? service)) : nip04SharedSecret(connectionSecret, xonlyOf(spec.encryptTo ?? service));
    const plaintext = typeof spec.body === 'string' ? spec.body : JSON.stringify(spec.body);
    const content =
      scheme === 'nip44_v2'
        ? nip44.encrypt(plaintext, key, fixedBytes(`${spec.label} nonce`, 32))
        : nip04EncryptWithIv(key, plaintext, fixedBytes(`${spec.label} iv`, 16));
    const tags: string[][] = [['p', xonlyOf(service)]];
    if (spec.encryption !== 'none-tag-nip04') tags.push(['encryption', spec.encryption]);
    if (spec.expiration !== undefined) tags.push(['expiration', String(spec.expiration)]);
    return signEventFixed({ kind: spec.kind ?? 23194, created_at: spec.createdAt ?? now - 10, tags, content }, spec.signer ?? connectionSecret);
  };
  const pay = (inv: string, extra: Record<string, unknown> = {}) => ({ method: 'pay_invoice', params: { invoice: inv, ...extra } });

  type VectorTarget =
    | { type: 'keysend'; destination: string; preimage: string | null; tlv_records: { type: string; value: string }[] }
    | { type: 'lightning_address'; address: string };
  const payment = (
    overrides: Partial<{ deposit_owner: string; operator_node_pubkey: string; invoice: string; amount_msat: string; max_fee_msat: string; now: number; target: VectorTarget }> = {},
  ) => ({
    deposit_owner: xonlyOf(user),
    operator_node_pubkey: operator,
    invoice,
    amount_msat: '50000',
    max_fee_msat: '10000',
    now,
    ...overrides,
  });
  const auth = (g: Event, r: Event, encryption: 'nip44_v2' | 'nip04' = 'nip44_v2', key?: Uint8Array) => ({
    grant: g,
    request: r,
    encryption,
    key: bytesToHex(key ?? serviceKeyFor(encryption)),
  });
  const okCase = (name: string, a: ReturnType<typeof auth>, p: ReturnType<typeof payment>, paymentHashLabel: string | null, method = 'pay_invoice') => ({
    name,
    authorization: a,
    payment: p,
    expected: {
      ok: true,
      request_id: a.request.id,
      connection,
      method,
      target: p.target?.type ?? 'invoice',
      payment_hash: paymentHashLabel === null ? null : fixedHex32(`auth ${paymentHashLabel} hash`),
      amount_msat: p.amount_msat,
    },
  });
  const refusal = (name: string, a: ReturnType<typeof auth>, p: ReturnType<typeof payment>, code: string) => ({ name, authorization: a, payment: p, expected: { ok: false, code } });

  const nip44Request = request({ body: pay(invoice), encryption: 'nip44_v2', label: 'main' });
  const nip04Request = request({ body: pay(invoice), encryption: 'none-tag-nip04', label: 'nip04' });
  const grantWith = (patch: Omit<GrantContentInput, 'connection'>) =>
    grantEvent(grantContent({ connection, methods: ['get_info', 'get_balance', 'pay_invoice'], ...patch }), user);
  const otherUser = fixedSecret('other-user');

  // --- pay_keysend and NWC-321 pay ---------------------------------------------------------
  const allMethods = grantWith({ methods: ['get_info', 'pay_invoice', 'pay_keysend', 'pay'] });
  const payeeNode = nodePubkeyOf(payee);
  const otherNode = nodePubkeyOf(fixedSecret('other-payee-node'));
  const keysendPreimage = fixedHex32('auth keysend preimage');
  const boost = { type: 7629169, value: '7b22616374696f6e223a22626f6f7374227d' };
  const chat = { type: 34349334, value: '68656c6c6f' };
  const keysend = (params: Record<string, unknown>) => ({ method: 'pay_keysend', params: { amount: 21_000, pubkey: payeeNode, ...params } });
  const pay321 = (params: Record<string, unknown>) => ({ method: 'pay', params });
  const keysendTarget = (o: Partial<{ destination: string; preimage: string | null; tlv_records: { type: string; value: string }[] }> = {}): VectorTarget => ({
    type: 'keysend',
    destination: payeeNode,
    preimage: null,
    tlv_records: [],
    ...o,
  });
  const address = 'satoshi@wallet.example.com';
  const addressTarget = (a = address): VectorTarget => ({ type: 'lightning_address', address: a });
  const keysendPayment = (target: VectorTarget, amount = '21000', maxFee = '10000') => payment({ target, amount_msat: amount, max_fee_msat: maxFee });
  const req = (body: unknown, label: string) => request({ body, encryption: 'nip44_v2', label });

  const paymentMethodValid = [
    okCase('accepts pay_keysend to the signed pubkey, the vault picking the preimage', auth(allMethods, req(keysend({}), 'keysend-plain')), keysendPayment(keysendTarget()), null, 'pay_keysend'),
    okCase(
      'accepts pay_keysend with the signed preimage and TLV records, listed in another order',
      auth(allMethods, req(keysend({ preimage: keysendPreimage, tlv_records: [chat, boost] }), 'keysend-tlv')),
      keysendPayment(
        keysendTarget({
          preimage: keysendPreimage,
          tlv_records: [
            { type: '7629169', value: boost.value },
            { type: '34349334', value: chat.value },
          ],
        }),
      ),
      null,
      'pay_keysend',
    ),
    okCase(
      'accepts a TLV type past 2^53 written as a decimal string',
      auth(allMethods, req(keysend({ tlv_records: [{ type: '18446744073709551615', value: 'ff' }] }), 'keysend-u64')),
      keysendPayment(keysendTarget({ tlv_records: [{ type: '18446744073709551615', value: 'ff' }] })),
      null,
      'pay_keysend',
    ),
    okCase(
      'accepts pay with a BIP-321 URI written in capitals (scheme and keys case-insensitive)',
      auth(allMethods, req(pay321({ payment: `BITCOIN:?LIGHTNING=${invoice.toUpperCase()}&label=coffee` }), 'bip321-upper')),
      payment(),
      'main',
      'pay',
    ),
    okCase(
      'accepts pay with a BIP-321 URI with an on-chain fallback, unknown optional keys and a pop',
      auth(allMethods, req(pay321({ payment: `bitcoin:bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080?somethingnew=1&pop=initiatingapp%3a&lightning=${invoice}` }), 'bip321-fallback')),
      payment(),
      'main',
      'pay',
    ),
    okCase('accepts pay with a bare BOLT 11', auth(allMethods, req(pay321({ payment: invoice }), 'pay-bare')), payment(), 'main', 'pay'),
    okCase('accepts pay with a lightning: URI', auth(allMethods, req(pay321({ payment: `lightning:${invoice}` }), 'pay-lightning-uri')), payment(), 'main', 'pay'),
    okCase(
      'accepts pay of an amountless invoice with the BIP-321 amount (0.00000042 BTC = 42000 msat)',
      auth(allMethods, req(pay321({ payment: `bitcoin:?amount=0.00000042&lightning=${amountless}` }), 'bip321-amount')),
      payment({ invoice: amountless, amount_msat: '42000' }),
      'amountless',
      'pay',
    ),
    okCase(
      'accepts pay of a lightning address the vault resolves, with an amount',
      auth(allMethods, req(pay321({ payment: address, amount: 30_000, payer_note: 'thanks' }), 'address')),
      payment({ target: addressTarget(), amount_msat: '30000' }),
      null,
      'pay',
    ),
    okCase(
      'accepts a lightning address written in capitals with a lightning: prefix',
      auth(allMethods, req(pay321({ payment: 'lightning:Satoshi@Wallet.Example.com', amount: 30_000 }), 'address-upper')),
      payment({ target: addressTarget(), amount_msat: '30000' }),
      null,
      'pay',
    ),
  ];

  const paymentMethodInvalid = () => [
    refusal('refuses pay_keysend when the grant does not list it', auth(grant, req(keysend({}), 'keysend-not-granted')), keysendPayment(keysendTarget()), 'RESTRICTED'),
    refusal('refuses a keysend to another pubkey than the app signed', auth(allMethods, req(keysend({}), 'keysend-other-node')), keysendPayment(keysendTarget({ destination: otherNode })), 'UNAUTHORIZED'),
    refusal('refuses a keysend of another amount than the app signed', auth(allMethods, req(keysend({}), 'keysend-other-amount')), keysendPayment(keysendTarget(), '21001'), 'UNAUTHORIZED'),
    refusal(
      'refuses a keysend with another preimage than the app signed',
      auth(allMethods, req(keysend({ preimage: keysendPreimage }), 'keysend-other-preimage')),
      keysendPayment(keysendTarget({ preimage: fixedHex32('auth other preimage') })),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a keysend preimage chosen by the bridge when the app gave none',
      auth(allMethods, req(keysend({}), 'keysend-bridge-preimage')),
      keysendPayment(keysendTarget({ preimage: keysendPreimage })),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a keysend with a TLV record the app did not sign',
      auth(allMethods, req(keysend({ tlv_records: [boost] }), 'keysend-extra-tlv')),
      keysendPayment(keysendTarget({ tlv_records: [{ type: '7629169', value: boost.value }, { type: '34349334', value: chat.value }] })),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a keysend whose TLV value differs from the signed one',
      auth(allMethods, req(keysend({ tlv_records: [boost] }), 'keysend-other-tlv')),
      keysendPayment(keysendTarget({ tlv_records: [{ type: '7629169', value: '00' }] })),
      'UNAUTHORIZED',
    ),
    refusal('refuses a signed TLV type below 65536', auth(allMethods, req(keysend({ tlv_records: [{ type: 5, value: '00' }] }), 'keysend-low-tlv')), keysendPayment(keysendTarget()), 'BAD_REQUEST'),
    refusal('refuses a signed keysend of 0 msat', auth(allMethods, req(keysend({ amount: 0 }), 'keysend-zero')), keysendPayment(keysendTarget(), '0'), 'BAD_REQUEST'),
    refusal('refuses paying an invoice with a signed keysend', auth(allMethods, req(keysend({ amount: 50_000 }), 'keysend-as-invoice')), payment(), 'UNAUTHORIZED'),
    refusal('refuses a keysend with a signed pay_invoice', auth(allMethods, nip44Request), keysendPayment(keysendTarget(), '50000'), 'UNAUTHORIZED'),
    refusal(
      'refuses paying another invoice than the one in the signed BIP-321 URI',
      auth(allMethods, req(pay321({ payment: `bitcoin:?lightning=${invoice}` }), 'bip321-other')),
      payment({ invoice: otherInvoice }),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a BIP-321 URI with an unknown required parameter',
      auth(allMethods, req(pay321({ payment: `bitcoin:?lightning=${invoice}&req-somethingnew=1` }), 'bip321-req')),
      payment(),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses a BIP-321 URI whose req-pop cannot be honoured',
      auth(allMethods, req(pay321({ payment: `bitcoin:?lightning=${invoice}&req-pop=initiatingapp%3a` }), 'bip321-req-pop')),
      payment(),
      'BAD_REQUEST',
    ),
    refusal('refuses a BIP-321 URI with only a BOLT 12 offer', auth(allMethods, req(pay321({ payment: 'bitcoin:?lno=lno1qgsqvgnwgcg35z6ee2h3yczraddm72xrfua9uve2rlrm9deu7xyfzrc' }), 'bip321-lno')), payment(), 'BAD_REQUEST'),
    refusal(
      'refuses a BIP-321 amount that conflicts with the invoice amount',
      auth(allMethods, req(pay321({ payment: `bitcoin:?amount=0.001&lightning=${invoice}` }), 'bip321-conflict')),
      payment(),
      'BAD_REQUEST',
    ),
    refusal('refuses a BIP-321 URI with two amounts', auth(allMethods, req(pay321({ payment: `bitcoin:?amount=0.0000005&amount=0.0000005&lightning=${invoice}` }), 'bip321-two-amounts')), payment(), 'BAD_REQUEST'),
    refusal('refuses a payer note with a BOLT 11, which cannot deliver it', auth(allMethods, req(pay321({ payment: invoice, payer_note: 'hi' }), 'pay-note')), payment(), 'BAD_REQUEST'),
    refusal('refuses pay when the grant lists only pay_invoice', auth(grant, req(pay321({ payment: invoice }), 'pay-not-granted')), payment(), 'RESTRICTED'),
    refusal(
      'refuses an invoice supplied for a signed lightning address (the vault resolves it)',
      auth(allMethods, req(pay321({ payment: address, amount: 50_000 }), 'address-invoice')),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses paying another lightning address than the app signed',
      auth(allMethods, req(pay321({ payment: address, amount: 30_000 }), 'address-other')),
      payment({ target: addressTarget('mallory@wallet.example.com'), amount_msat: '30000' }),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses another amount for a lightning address than the app signed',
      auth(allMethods, req(pay321({ payment: address, amount: 30_000 }), 'address-amount')),
      payment({ target: addressTarget(), amount_msat: '30001' }),
      'UNAUTHORIZED',
    ),
    refusal('refuses a lightning address without an amount', auth(allMethods, req(pay321({ payment: address }), 'address-no-amount')), payment({ target: addressTarget() }), 'BAD_REQUEST'),
    refusal('refuses a lightning address with an invalid name', auth(allMethods, req(pay321({ payment: 'sa toshi@wallet.example.com', amount: 1000 }), 'address-bad')), payment({ target: addressTarget() }), 'BAD_REQUEST'),
    refusal(
      'refuses a fee limit above the app max_fee (pay_invoice)',
      auth(allMethods, req(pay(invoice, { max_fee: 9_999 }), 'max-fee-below')),
      payment(),
      'FEE_LIMIT',
    ),
    refusal(
      'refuses a fee limit above the app max_fee (pay_keysend)',
      auth(allMethods, req(keysend({ max_fee: 5_000 }), 'keysend-max-fee')),
      keysendPayment(keysendTarget(), '21000', '5001'),
      'FEE_LIMIT',
    ),
    refusal(
      'refuses a fee limit above the app max_fee (pay)',
      auth(allMethods, req(pay321({ payment: invoice, max_fee: 0 }), 'pay-max-fee')),
      payment({ max_fee_msat: '1' }),
      'FEE_LIMIT',
    ),
  ];

  const valid = [
    okCase('accepts a NIP-44 pay_invoice request under the grant', auth(grant, nip44Request), payment(), 'main'),
    okCase('accepts a NIP-04 request without an encryption tag', auth(grant, nip04Request, 'nip04'), payment(), 'main'),
    okCase(
      'accepts a NIP-04 request with an explicit nip04 tag',
      auth(grant, request({ body: pay(invoice), encryption: 'nip04', label: 'nip04-tagged' }), 'nip04'),
      payment(),
      'main',
    ),
    okCase('accepts an uppercase invoice in the signed plaintext', auth(grant, request({ body: pay(invoice.toUpperCase()), encryption: 'nip44_v2', label: 'upper' })), payment(), 'main'),
    okCase('accepts the invoice to pay given in uppercase', auth(grant, nip44Request), payment({ invoice: invoice.toUpperCase() }), 'main'),
    okCase(
      'accepts params.amount equal to the invoice amount',
      auth(grant, request({ body: pay(invoice, { amount: 50_000 }), encryption: 'nip44_v2', label: 'same-amount' })),
      payment(),
      'main',
    ),
    okCase(
      'accepts an amountless invoice with the amount in params',
      auth(grant, request({ body: pay(amountless, { amount: 42_000 }), encryption: 'nip44_v2', label: 'amountless' })),
      payment({ invoice: amountless, amount_msat: '42000' }),
      'amountless',
    ),
    okCase(
      'accepts a request exactly 300 s old',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', createdAt: now - 300, label: 'age-300' })),
      payment(),
      'main',
    ),
    okCase(
      'accepts a request dated exactly 60 s ahead',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', createdAt: now + 60, label: 'skew-60' })),
      payment(),
      'main',
    ),
    okCase(
      'accepts a request whose expiration tag is in the future',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', expiration: now + 1, label: 'expiration-future' })),
      payment(),
      'main',
    ),
    okCase('accepts an operator the grant lists', auth(grantWith({ vault_operators: [otherOperator, operator] }), nip44Request), payment(), 'main'),
    okCase('accepts a grant that expires after now', auth(grantWith({ expires_at: now + 1 }), nip44Request), payment(), 'main'),
    okCase(
      'accepts a fee limit equal to the app max_fee',
      auth(grant, request({ body: pay(invoice, { max_fee: 10_000 }), encryption: 'nip44_v2', label: 'max-fee-equal' })),
      payment(),
      'main',
    ),
    ...paymentMethodValid,
  ];

  const tamperedContent = request({ body: pay(otherInvoice), encryption: 'nip44_v2', label: 'tampered-content' }).content;
  const invalid = [
    refusal('refuses a grant signed by a key other than the deposit owner', auth(grantEvent(grantContent({ connection }), otherUser), nip44Request), payment(), 'UNAUTHORIZED'),
    refusal('refuses a grant that is not a grant event', auth(grantEvent(grantContent({ connection }), user, { kind: 1 }), nip44Request), payment(), 'UNAUTHORIZED'),
    refusal(
      'refuses a grant whose content was changed after signing',
      auth({ ...grant, content: JSON.stringify(grantContent({ connection, max_amount_msat: null, budget: null })) }, nip44Request),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal('refuses under a revoked grant', auth(grantWith({ revoked: true }), nip44Request), payment(), 'UNAUTHORIZED'),
    refusal('refuses under an expired grant', auth(grantWith({ expires_at: now - 1 }), nip44Request), payment(), 'EXPIRED'),
    refusal('refuses under a grant expiring exactly now', auth(grantWith({ expires_at: now }), nip44Request), payment(), 'EXPIRED'),
    refusal(
      'refuses a request event of the wrong kind',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', kind: 23195, label: 'kind' })),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a request signed by a key the grant does not name',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', signer: intruder, label: 'intruder' })),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses a request that claims the connection key but is signed by another',
      auth(grant, { ...request({ body: pay(invoice), encryption: 'nip44_v2', signer: intruder, label: 'intruder-claims' }), pubkey: connection }),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal('refuses a request whose content was replaced after signing', auth(grant, { ...nip44Request, content: tamperedContent }), payment({ invoice: otherInvoice }), 'UNAUTHORIZED'),
    refusal('refuses a request whose id was altered', auth(grant, { ...nip44Request, id: flipHexChar(nip44Request.id, 3) }), payment(), 'UNAUTHORIZED'),
    refusal('refuses a request whose signature was altered', auth(grant, { ...nip44Request, sig: flipHexChar(nip44Request.sig, 70) }), payment(), 'UNAUTHORIZED'),
    refusal(
      'refuses a request more than 300 s old',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', createdAt: now - 301, label: 'age-301' })),
      payment(),
      'EXPIRED',
    ),
    refusal(
      'refuses a request dated more than 60 s ahead',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', createdAt: now + 61, label: 'skew-61' })),
      payment(),
      'EXPIRED',
    ),
    refusal(
      'refuses a request past its expiration tag',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', expiration: now - 1, label: 'expiration-past' })),
      payment(),
      'EXPIRED',
    ),
    refusal(
      'refuses a request whose expiration tag is exactly now',
      auth(grant, request({ body: pay(invoice), encryption: 'nip44_v2', expiration: now, label: 'expiration-now' })),
      payment(),
      'EXPIRED',
    ),
    refusal('refuses a NIP-44 request presented as NIP-04', auth(grant, nip44Request, 'nip04', serviceKeyFor('nip04')), payment(), 'UNAUTHORIZED'),
    refusal('refuses an untagged (NIP-04) request presented as NIP-44', auth(grant, nip04Request, 'nip44_v2', serviceKeyFor('nip44_v2')), payment(), 'UNAUTHORIZED'),
    refusal('refuses a NIP-44 key of another conversation', auth(grant, nip44Request, 'nip44_v2', serviceKeyFor('nip44_v2', intruder)), payment(), 'UNAUTHORIZED'),
    refusal('refuses a NIP-04 key of another conversation', auth(grant, nip04Request, 'nip04', serviceKeyFor('nip04', intruder)), payment(), 'UNAUTHORIZED'),
    refusal(
      'refuses a granted method that does not pay',
      auth(grant, request({ body: { method: 'get_balance', params: {} }, encryption: 'nip44_v2', label: 'get-balance' })),
      payment(),
      'RESTRICTED',
    ),
    refusal('refuses pay_invoice when the grant does not list it', auth(grantWith({ methods: ['get_info', 'get_balance'] }), nip44Request), payment(), 'RESTRICTED'),
    refusal('refuses paying an invoice other than the one the app signed', auth(grant, nip44Request), payment({ invoice: otherInvoice }), 'UNAUTHORIZED'),
    refusal('refuses paying an amount other than the invoice amount', auth(grant, nip44Request), payment({ amount_msat: '50001' }), 'UNAUTHORIZED'),
    refusal(
      'refuses params.amount that differs from the invoice amount',
      auth(grant, request({ body: pay(invoice, { amount: 49_000 }), encryption: 'nip44_v2', label: 'other-amount' })),
      payment(),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses an amountless invoice without params.amount',
      auth(grant, request({ body: pay(amountless), encryption: 'nip44_v2', label: 'amountless-no-amount' })),
      payment({ invoice: amountless, amount_msat: '42000' }),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses paying an amountless invoice with an amount other than params.amount',
      auth(grant, request({ body: pay(amountless, { amount: 42_000 }), encryption: 'nip44_v2', label: 'amountless-other' })),
      payment({ invoice: amountless, amount_msat: '42001' }),
      'UNAUTHORIZED',
    ),
    refusal('refuses an operator the grant does not list', auth(grantWith({ vault_operators: [otherOperator] }), nip44Request), payment(), 'RESTRICTED'),
    refusal('refuses under a grant that allows no operator', auth(grantWith({ vault_operators: [] }), nip44Request), payment(), 'RESTRICTED'),
    refusal(
      'refuses a plaintext that is not a NIP-47 request',
      auth(grant, request({ body: { invoice }, encryption: 'nip44_v2', label: 'not-nip47' })),
      payment(),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses a plaintext that is not JSON',
      auth(grant, request({ body: 'pay_invoice ' + invoice, encryption: 'nip44_v2', label: 'not-json' })),
      payment(),
      'UNAUTHORIZED',
    ),
    refusal(
      'refuses pay_invoice params without an invoice',
      auth(grant, request({ body: { method: 'pay_invoice', params: { amount: 50_000 } }, encryption: 'nip44_v2', label: 'no-invoice' })),
      payment(),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses a signed invoice that does not decode',
      auth(grant, request({ body: pay('lnbcrt1garbage'), encryption: 'nip44_v2', label: 'garbage-invoice' })),
      payment({ invoice: 'lnbcrt1garbage' }),
      'BAD_REQUEST',
    ),
    refusal(
      'refuses a negative params.amount',
      auth(grant, request({ body: pay(amountless, { amount: -1 }), encryption: 'nip44_v2', label: 'negative' })),
      payment({ invoice: amountless, amount_msat: '42000' }),
      'BAD_REQUEST',
    ),
    ...paymentMethodInvalid(),
  ];

  return {
    description:
      'Payment authorizations (docs/vault-api.md, "Authorization") and what verifyPaymentAuthorization must answer. payment.now is the vault clock in unix seconds; amounts are decimal strings of msats; key is the NIP-44 conversation key or NIP-04 shared secret of (connection, wallet service). payment.target, when present, is what is paid instead of payment.invoice: a keysend (destination, preimage or null when the vault picks it, tlv_records with decimal-string types) or a lightning address; expected.target names the kind accepted and expected.payment_hash is the invoice payment hash (null for other targets).',
    keys: {
      user_secret: bytesToHex(user),
      user_pubkey: xonlyOf(user),
      connection_secret: bytesToHex(connectionSecret),
      connection_pubkey: connection,
      wallet_service_secret: bytesToHex(service),
      wallet_service_pubkey: xonlyOf(service),
      operator_node_pubkey: operator,
    },
    valid,
    invalid,
  };
}

function invoiceVectors() {
  const node = fixedSecret('invoice-node');
  const base = { nodeSecret: node, timestamp: VECTOR_NOW };
  const specs: { name: string; spec: InvoiceSpec }[] = [
    {
      name: 'regtest invoice with amount, description and basic_mpp',
      spec: { ...base, network: 'regtest', amountMsat: 21_000n, paymentHash: fixedHex32('inv-1'), paymentSecret: fixedHex32('inv-1-secret'), description: 'coffee', expirySeconds: 600, basicMpp: true },
    },
    {
      name: 'testnet invoice with a whole-satoshi amount',
      spec: { ...base, network: 'testnet', amountMsat: 250_000_000n, paymentHash: fixedHex32('inv-2'), paymentSecret: fixedHex32('inv-2-secret'), description: 'testnet' },
    },
    {
      name: 'mainnet invoice with a sub-satoshi amount',
      spec: { ...base, network: 'mainnet', amountMsat: 1_234_567n, paymentHash: fixedHex32('inv-3'), paymentSecret: fixedHex32('inv-3-secret'), description: 'mainnet' },
    },
    {
      name: 'signet invoice',
      spec: { ...base, network: 'signet', amountMsat: 1_000n, paymentHash: fixedHex32('inv-4'), paymentSecret: fixedHex32('inv-4-secret'), description: 'signet' },
    },
    {
      name: 'amountless regtest invoice with a description hash',
      spec: { ...base, network: 'regtest', paymentHash: fixedHex32('inv-5'), paymentSecret: fixedHex32('inv-5-secret'), descriptionHash: fixedHex32('inv-5-description'), expirySeconds: 86_400 },
    },
    {
      name: 'regtest invoice without payment secret or feature bits',
      spec: { ...base, network: 'regtest', amountMsat: 5_000n, paymentHash: fixedHex32('inv-6'), description: '' },
    },
  ];
  const valid = specs.map(({ name, spec }) => ({
    name,
    invoice: makeInvoice(spec),
    expected: {
      network: spec.network,
      amount_msat: spec.amountMsat === undefined ? null : spec.amountMsat.toString(),
      payment_hash: spec.paymentHash,
      payment_secret: spec.paymentSecret ?? null,
      payee_node_key: nodePubkeyOf(spec.nodeSecret),
      description: spec.descriptionHash === undefined ? (spec.description ?? '') : null,
      description_hash: spec.descriptionHash ?? null,
      created_at: spec.timestamp,
      expires_at: spec.timestamp + (spec.expirySeconds ?? 3600),
      basic_mpp: spec.basicMpp === true,
    },
  }));
  const first = valid[0]?.invoice ?? '';
  const invalid = [
    { name: 'empty string', input: '' },
    { name: 'not an invoice', input: 'hello world' },
    { name: 'a bech32 string of another kind', input: 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4' },
    { name: 'unknown network prefix', input: 'lnxy1' + first.slice(first.lastIndexOf('1') + 1) },
    { name: 'one character changed (checksum)', input: first.slice(0, -8) + (first.at(-8) === 'q' ? 'p' : 'q') + first.slice(-7) },
    { name: 'truncated', input: first.slice(0, 60) },
    { name: 'only the prefix', input: 'lnbcrt' },
    { name: 'prefix and separator only', input: 'lnbcrt1' },
  ];
  return {
    description:
      'BOLT 11 invoices signed by bolt11 (RFC 6979) with a fixed node key and timestamp, and what decoding must give; invalid inputs must be refused with BAD_REQUEST and never throw.',
    node_secret: bytesToHex(node),
    valid,
    invalid: invalid.map((i) => ({ ...i, expected: { ok: false, code: 'BAD_REQUEST' } })),
  };
}

function paymentInstructionVectors() {
  const node = fixedSecret('payment-instruction-node');
  const invoiceOf = (label: string, amountMsat?: bigint) =>
    makeInvoice({
      network: 'regtest',
      nodeSecret: node,
      ...(amountMsat === undefined ? {} : { amountMsat }),
      paymentHash: fixedHex32(`instruction ${label}`),
      paymentSecret: fixedHex32(`instruction ${label} secret`),
      timestamp: VECTOR_NOW,
      description: label,
    });
  const fixed = invoiceOf('fixed', 250_000n);
  const amountless = invoiceOf('amountless');
  const bolt11 = (name: string, input: string, label: string, form: string, uriAmount: string | null, amount: string | null) => ({
    name,
    input,
    expected: { ok: true, type: 'bolt11', form, payment_hash: fixedHex32(`instruction ${label}`), invoice_amount_msat: amount, uri_amount_msat: uriAmount },
  });
  const address = (name: string, input: string, normalized: string, url: string) => ({
    name,
    input,
    expected: { ok: true, type: 'lightning_address', address: normalized, lnurlp_url: url },
  });
  const invalid = (name: string, input: string, nwcCode = 'BAD_REQUEST') => ({ name, input, expected: { ok: false, code: 'BAD_REQUEST', nwc_code: nwcCode } });
  return {
    description:
      'The `payment` of an NWC-321 pay request: a BIP-321 URI (first lightning parameter; scheme and keys case-insensitive; req- parameters refused, req-pop included; amount in decimal BTC, 1 msat = 0.00000000001 BTC), a bare BOLT 11 or lightning: URI, or a lightning address (LUD-16; lnurlp_url is http only on loopback hosts). Refusals give the Vault API code and the NWC-321 code.',
    cases: [
      bolt11('bare BOLT 11', fixed, 'fixed', 'bolt11', null, '250000'),
      bolt11('lightning: URI in capitals', `LIGHTNING:${fixed.toUpperCase()}`, 'fixed', 'lightning_uri', null, '250000'),
      bolt11('BIP-321 without address', `bitcoin:?lightning=${fixed}`, 'fixed', 'bip321', null, '250000'),
      bolt11('BIP-321 in capitals with the matching amount', `BITCOIN:?AMOUNT=0.0000025&LIGHTNING=${fixed.toUpperCase()}`, 'fixed', 'bip321', '250000', '250000'),
      bolt11('BIP-321 with on-chain fallback and label', `bitcoin:bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080?label=Luke-Jr&lightning=${fixed}`, 'fixed', 'bip321', null, '250000'),
      bolt11('BIP-321 amount for an amountless invoice', `bitcoin:?amount=.00000001234&lightning=${amountless}`, 'amountless', 'bip321', '1234', null),
      bolt11('BIP-321: the first lightning parameter is the one paid', `bitcoin:?lightning=${amountless}&lightning=${fixed}`, 'amountless', 'bip321', null, null),
      bolt11('BIP-321 with unknown optional keys and a pop', `bitcoin:?foo=bar&pop=app%3a&lno=lno1abc&lightning=${fixed}`, 'fixed', 'bip321', null, '250000'),
      address('lightning address', 'satoshi@wallet.example.com', 'satoshi@wallet.example.com', 'https://wallet.example.com/.well-known/lnurlp/satoshi'),
      address('lightning address in capitals with lightning:', 'lightning:Satoshi@Wallet.Example.com', 'satoshi@wallet.example.com', 'https://wallet.example.com/.well-known/lnurlp/satoshi'),
      address('lightning address on loopback (devnet)', 'payee@127.0.0.1:7450', 'payee@127.0.0.1:7450', 'http://127.0.0.1:7450/.well-known/lnurlp/payee'),
      address('lightning address with + and .', 'a.b+c@pay.example.org', 'a.b+c@pay.example.org', 'https://pay.example.org/.well-known/lnurlp/a.b+c'),
      invalid('BIP-321 with an unknown req- parameter', `bitcoin:?lightning=${fixed}&req-foo=1`),
      invalid('BIP-321 with req-pop', `bitcoin:?lightning=${fixed}&req-pop=app%3a`),
      invalid('BIP-321 with pop and req-pop', `bitcoin:?lightning=${fixed}&pop=a%3a&req-pop=a%3a`),
      invalid('BIP-321 with two labels', `bitcoin:?label=a&label=b&lightning=${fixed}`),
      invalid('BIP-321 with two amounts', `bitcoin:?amount=1&amount=1&lightning=${amountless}`),
      invalid('BIP-321 amount with a comma', `bitcoin:?amount=1,5&lightning=${amountless}`),
      invalid('BIP-321 amount finer than a msat', `bitcoin:?amount=0.000000000001&lightning=${amountless}`),
      invalid('BIP-321 amount conflicting with the invoice', `bitcoin:?amount=0.0000025001&lightning=${fixed}`),
      invalid('BIP-321 with only an on-chain address', 'bitcoin:bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080?amount=1', 'UNSUPPORTED_PAYMENT_INSTRUCTION'),
      invalid('BIP-321 with only a BOLT 12 offer', 'bitcoin:?lno=lno1abc', 'UNSUPPORTED_PAYMENT_INSTRUCTION'),
      invalid('BIP-321 whose lightning parameter is not an invoice', 'bitcoin:?lightning=lnbcrt1garbage'),
      invalid('BIP-321 with a broken percent-encoding', `bitcoin:?label=%zz&lightning=${fixed}`),
      invalid('a BOLT 11 that does not decode', 'lnbcrt1garbage'),
      invalid('something else', 'hello', 'UNSUPPORTED_PAYMENT_INSTRUCTION'),
      invalid('a lightning address with a space', 'sa toshi@wallet.example.com'),
      invalid('a lightning address without a domain', 'satoshi@wallet'),
      invalid('a lightning address with a path', 'satoshi@wallet.example.com/x'),
      invalid('a lightning address with credentials', 'satoshi@user:pw@wallet.example.com'),
    ],
  };
}

function nip98Vectors() {
  const secret = fixedSecret('bridge-service');
  const header = (url: string, method: string, body: string | undefined, createdAt: number) => {
    const tags = [
      ['u', url],
      ['method', method],
    ];
    if (body !== undefined) tags.push(['payload', bytesToHex(sha256(utf8.encode(body)))]);
    const event = signEventFixed({ kind: 27235, created_at: createdAt, tags, content: '' }, secret);
    return `Nostr ${base64.encode(utf8.encode(JSON.stringify(event)))}`;
  };
  const body = JSON.stringify({ amount_msat: '21000', description: 'vector' });
  const cases = [
    { name: 'GET without a body', url: 'https://vault-a.example/v0/info', method: 'GET', body: undefined },
    { name: 'POST with a JSON body', url: 'https://vault-a.example/v0/deposits/dep_0001/invoices', method: 'POST', body },
  ].map((c) => ({ ...c, body: c.body ?? null, created_at: VECTOR_NOW, header: header(c.url, c.method, c.body, VECTOR_NOW) }));
  return {
    description: 'NIP-98 Authorization headers (kind 27235, u, method, payload = SHA-256 of the body) signed with fixed aux data.',
    pubkey: xonlyOf(secret),
    cases,
  };
}

/** Every vector file, by file name. */
export function buildVectors(): Record<string, unknown> {
  return {
    'vault-keys.json': vaultKeysVectors(),
    'vault-proofs.json': vaultProofVectors(),
    'nwc-encryption.json': nwcEncryptionVectors(),
    'grants.json': grantVectors(),
    'authorizations.json': authorizationVectors(),
    'payment-instructions.json': paymentInstructionVectors(),
    'invoices.json': invoiceVectors(),
    'nip98.json': nip98Vectors(),
  };
}

/** The exact bytes written for a vector file. */
export function serializeVector(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export const VECTORS_DIR = dirname(fileURLToPath(import.meta.url));

/** Reads a checked-in vector file; the caller names the shape it expects. */
export function readVector<T>(file: string): T {
  return JSON.parse(readFileSync(join(VECTORS_DIR, file), 'utf8'));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [file, value] of Object.entries(buildVectors())) {
    writeFileSync(join(VECTORS_DIR, file), serializeVector(value));
    console.log(`wrote test/vectors/${file}`);
  }
}
