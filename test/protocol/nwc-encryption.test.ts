import fc from 'fast-check';
import { hexToBytes } from '@noble/hashes/utils.js';
import * as nip04 from 'nostr-tools/nip04';
import { v2 as nip44 } from 'nostr-tools/nip44';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import { describe, expect, it } from 'vitest';
import { bytesToHex } from '../../src/protocol/hex.ts';
import { decryptContent, encryptContent, requestEncryption, sharedKey, SUPPORTED_ENCRYPTIONS, type NwcEncryption } from '../../src/protocol/nwc-encryption.ts';
import { readVector } from '../vectors/generate.ts';

interface EncryptionVectors {
  cases: {
    name: string;
    secret_a: string;
    pubkey_a: string;
    secret_b: string;
    pubkey_b: string;
    pubkey_b_compressed: string;
    nip44_conversation_key: string;
    nip04_shared_secret: string;
    plaintext: string;
    nip44: { nonce: string; payload: string };
    nip04: { iv: string; payload: string };
  }[];
}

const vectors = readVector<EncryptionVectors>('nwc-encryption.json');
const schemes: NwcEncryption[] = ['nip44_v2', 'nip04'];

describe('requestEncryption', () => {
  it.each<[string, string[][], ReturnType<typeof requestEncryption>]>([
    ['NIP-04 when the encryption tag is absent (NIP-47)', [['p', 'x']], 'nip04'],
    ['NIP-44 v2 for "nip44_v2"', [['encryption', 'nip44_v2']], 'nip44_v2'],
    ['NIP-04 for "nip04"', [['encryption', 'nip04']], 'nip04'],
    ['unsupported for an unknown scheme', [['encryption', 'nip99']], { unsupported: 'nip99' }],
    ['unsupported for a scheme in other case', [['encryption', 'NIP44_V2']], { unsupported: 'NIP44_V2' }],
    ['unsupported for an empty tag value', [['encryption', '']], { unsupported: '' }],
  ])('answers %s', (_, tags, expected) => {
    expect(requestEncryption({ tags })).toEqual(expected);
  });

  it('speaks exactly NIP-44 v2 and NIP-04', () => {
    expect([...SUPPORTED_ENCRYPTIONS].sort()).toEqual(['nip04', 'nip44_v2']);
  });
});

describe('sharedKey, encryptContent and decryptContent on the vectors', () => {
  it.each(vectors.cases)('$name: both sides derive the vector keys', (v) => {
    const a = hexToBytes(v.secret_a);
    const b = hexToBytes(v.secret_b);
    expect(bytesToHex(sharedKey('nip44_v2', a, v.pubkey_b))).toBe(v.nip44_conversation_key);
    expect(bytesToHex(sharedKey('nip44_v2', b, v.pubkey_a))).toBe(v.nip44_conversation_key);
    expect(bytesToHex(sharedKey('nip04', a, v.pubkey_b))).toBe(v.nip04_shared_secret);
    expect(bytesToHex(sharedKey('nip04', b, v.pubkey_a))).toBe(v.nip04_shared_secret);
  });

  it.each(vectors.cases)('$name: decrypts the vector payloads', (v) => {
    expect(decryptContent('nip44_v2', hexToBytes(v.nip44_conversation_key), v.nip44.payload)).toBe(v.plaintext);
    expect(decryptContent('nip04', hexToBytes(v.nip04_shared_secret), v.nip04.payload)).toBe(v.plaintext);
  });

  it('the vectors include a peer key with an odd y, which both schemes ignore', () => {
    expect(vectors.cases.some((v) => v.pubkey_b_compressed.startsWith('03'))).toBe(true);
  });
});

describe('sharedKey, encryptContent and decryptContent with fresh keys', () => {
  const alice = generateSecretKey();
  const bob = generateSecretKey();
  const alicePub = getPublicKey(alice);
  const bobPub = getPublicKey(bob);

  it.each(schemes)('%s: A secret + B pubkey gives the same key as B secret + A pubkey', (scheme) => {
    const ab = sharedKey(scheme, alice, bobPub);
    expect(ab).toHaveLength(32);
    expect(bytesToHex(ab)).toBe(bytesToHex(sharedKey(scheme, bob, alicePub)));
  });

  it('the two schemes use different keys', () => {
    expect(bytesToHex(sharedKey('nip44_v2', alice, bobPub))).not.toBe(bytesToHex(sharedKey('nip04', alice, bobPub)));
  });

  it.each(schemes)('%s: what A encrypts, B decrypts, for any non-empty text', (scheme) => {
    const sending = sharedKey(scheme, alice, bobPub);
    const receiving = sharedKey(scheme, bob, alicePub);
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }), (text) => {
        expect(decryptContent(scheme, receiving, encryptContent(scheme, sending, text))).toBe(text);
      }),
      { numRuns: 50 },
    );
  });

  it.each(schemes)('%s: encrypting the same text twice gives different payloads (random nonce or IV)', (scheme) => {
    const key = sharedKey(scheme, alice, bobPub);
    expect(encryptContent(scheme, key, 'same text')).not.toBe(encryptContent(scheme, key, 'same text'));
  });

  it('decrypts NIP-04 content nostr-tools encrypted', () => {
    const text = JSON.stringify({ method: 'pay_invoice', params: { invoice: 'lnbcrt1…' } });
    const payload = nip04.encrypt(alice, bobPub, text);
    expect(decryptContent('nip04', sharedKey('nip04', bob, alicePub), payload)).toBe(text);
  });

  it('encrypts NIP-04 content nostr-tools decrypts', () => {
    const text = '{"result_type":"get_balance","result":{"balance":21000}}';
    const payload = encryptContent('nip04', sharedKey('nip04', alice, bobPub), text);
    expect(nip04.decrypt(bob, alicePub, payload)).toBe(text);
  });

  it('decrypts NIP-44 content nostr-tools encrypted', () => {
    const text = JSON.stringify({ method: 'pay_invoice', params: { invoice: 'lnbcrt1…', amount: 21000 } });
    const payload = nip44.encrypt(text, nip44.utils.getConversationKey(alice, bobPub));
    expect(decryptContent('nip44_v2', sharedKey('nip44_v2', bob, alicePub), payload)).toBe(text);
  });

  it('encrypts NIP-44 content nostr-tools decrypts', () => {
    const text = '{"result_type":"pay_invoice","result":{"preimage":"00"}}';
    const payload = encryptContent('nip44_v2', sharedKey('nip44_v2', alice, bobPub), text);
    expect(nip44.decrypt(payload, nip44.utils.getConversationKey(bob, alicePub))).toBe(text);
  });

  it('NIP-44 with a key of another conversation throws (MAC)', () => {
    const payload = encryptContent('nip44_v2', sharedKey('nip44_v2', alice, bobPub), '{"method":"get_info","params":{}}');
    for (let i = 0; i < 10; i++) {
      const wrong = sharedKey('nip44_v2', generateSecretKey(), bobPub);
      expect(() => decryptContent('nip44_v2', wrong, payload)).toThrow();
    }
  });

  it('NIP-44 with a changed payload throws (MAC)', () => {
    const key = sharedKey('nip44_v2', alice, bobPub);
    const payload = encryptContent('nip44_v2', key, '{"method":"get_info","params":{}}');
    const middle = Math.floor(payload.length / 2);
    const changed = payload.slice(0, middle) + (payload[middle] === 'A' ? 'B' : 'A') + payload.slice(middle + 1);
    expect(() => decryptContent('nip44_v2', key, changed)).toThrow();
  });

  it('NIP-04 with a key of another conversation throws or yields something that is not JSON', () => {
    const payload = encryptContent('nip04', sharedKey('nip04', alice, bobPub), '{"method":"pay_invoice","params":{"invoice":"lnbcrt1"}}');
    for (let i = 0; i < 30; i++) {
      const wrong = sharedKey('nip04', generateSecretKey(), bobPub);
      expect(() => JSON.parse(decryptContent('nip04', wrong, payload))).toThrow();
    }
  });

  it('NIP-04 content without an IV throws', () => {
    const key = sharedKey('nip04', alice, bobPub);
    const [ciphertext] = encryptContent('nip04', key, 'hello').split('?iv=');
    expect(() => decryptContent('nip04', key, ciphertext ?? '')).toThrow();
  });
});
