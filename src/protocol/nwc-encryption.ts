import { v2 as nip44 } from 'nostr-tools/nip44';
import { cbc } from '@noble/ciphers/aes.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { base64 } from '@scure/base';
import type { Event } from 'nostr-tools/pure';
import { hexToBytes } from './hex.ts';
import { tagValue } from './nostr-event.ts';

export type NwcEncryption = 'nip44_v2' | 'nip04';
export const SUPPORTED_ENCRYPTIONS: readonly NwcEncryption[] = ['nip44_v2', 'nip04'];

/**
 * The scheme a NIP-47 request asks for: its `encryption` tag, or NIP-04 when the tag is absent
 * (NIP-47, "Encryption"). Returns the raw tag value when it names a scheme we do not speak.
 */
export function requestEncryption(event: Pick<Event, 'tags'>): NwcEncryption | { unsupported: string } {
  const tag = tagValue(event, 'encryption');
  if (tag === undefined) return 'nip04';
  if (tag === 'nip44_v2' || tag === 'nip04') return tag;
  const wanted = tag.split(/\s+/).filter(Boolean);
  for (const scheme of wanted) {
    if (scheme === 'nip44_v2' || scheme === 'nip04') return scheme;
  }
  return { unsupported: tag };
}

/**
 * The symmetric key for a pair of keys: the NIP-44 v2 conversation key, or for NIP-04 the
 * x coordinate of the ECDH point. Either one is what a vault receives as proof of plaintext.
 */
export function sharedKey(scheme: NwcEncryption, secretKey: Uint8Array, peerPubkey: string): Uint8Array {
  if (scheme === 'nip44_v2') return nip44.utils.getConversationKey(secretKey, peerPubkey);
  return secp256k1.getSharedSecret(secretKey, hexToBytes('02' + peerPubkey)).slice(1, 33);
}

/** Decrypts NWC content with a shared key; throws on a bad MAC, padding or encoding. */
export function decryptContent(scheme: NwcEncryption, key: Uint8Array, content: string): string {
  if (scheme === 'nip44_v2') return nip44.decrypt(content, key);
  const [ciphertext, iv] = content.split('?iv=');
  if (!ciphertext || !iv) throw new Error('NIP-04 content lacks an iv');
  const plaintext = cbc(key, base64.decode(iv)).decrypt(base64.decode(ciphertext));
  return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
}

export function encryptContent(scheme: NwcEncryption, key: Uint8Array, plaintext: string): string {
  if (scheme === 'nip44_v2') return nip44.encrypt(plaintext, key);
  const iv = randomBytes(16);
  const ciphertext = cbc(key, iv).encrypt(new TextEncoder().encode(plaintext));
  return `${base64.encode(ciphertext)}?iv=${base64.encode(iv)}`;
}
