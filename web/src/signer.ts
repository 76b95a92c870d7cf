import { finalizeEvent, generateSecretKey, getPublicKey, type EventTemplate, type NostrEvent } from 'nostr-tools/pure';
import * as nip19 from 'nostr-tools/nip19';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

/** Signs the user's statements and NIP-98 requests in the page; the key never leaves the browser. */
export interface Signer {
  pubkey: string;
  via: 'nip07' | 'credential' | 'key';
  sign(template: EventTemplate): Promise<NostrEvent>;
}

interface Nip07 {
  getPublicKey(): Promise<string>;
  signEvent(event: EventTemplate): Promise<NostrEvent>;
}

function nip07(): Nip07 | undefined {
  const candidate: unknown = (globalThis as { nostr?: unknown }).nostr;
  if (typeof candidate !== 'object' || candidate === null) return undefined;
  const n = candidate as Partial<Nip07>;
  return typeof n.getPublicKey === 'function' && typeof n.signEvent === 'function' ? (n as Nip07) : undefined;
}

export function hasNip07(): boolean {
  return nip07() !== undefined;
}

/** The browser's NIP-07 signer (an extension); each signature may ask the user. */
export async function nip07Signer(): Promise<Signer> {
  const ext = nip07();
  if (!ext) throw new Error('no NIP-07 signer (window.nostr) in this browser');
  const pubkey = await ext.getPublicKey();
  if (!/^[0-9a-f]{64}$/.test(pubkey)) throw new Error('the NIP-07 signer gave an invalid public key');
  return {
    pubkey,
    via: 'nip07',
    sign: async (template) => {
      const event = await ext.signEvent(template);
      if (event.pubkey !== pubkey) throw new Error('the NIP-07 signer signed with another key');
      return event;
    },
  };
}

export function keySigner(secret: Uint8Array, via: 'credential' | 'key' = 'key'): Signer {
  const pubkey = getPublicKey(secret);
  return { pubkey, via, sign: async (template) => finalizeEvent(template, secret) };
}

/** A secret key typed as nsec1… or 64 hex characters, or null. */
export function parseSecretKey(text: string): Uint8Array | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return hexToBytes(t.toLowerCase());
  try {
    const decoded = nip19.decode(t);
    return decoded.type === 'nsec' ? decoded.data : null;
  } catch {
    return null;
  }
}

export function npub(pubkey: string): string {
  return nip19.npubEncode(pubkey);
}

export function nsec(secret: Uint8Array): string {
  return nip19.nsecEncode(secret);
}

// The Credential Management API's password credentials (Chromium): the browser's password
// manager keeps a secret for this origin and gives it back after the user agrees.
interface PasswordCredentialInit {
  id: string;
  password: string;
  name?: string;
}
interface StoredPassword {
  type: string;
  id: string;
  password?: string;
}
type PasswordCredentialCtor = new (init: PasswordCredentialInit) => Credential;

function passwordCredentialCtor(): PasswordCredentialCtor | undefined {
  const ctor: unknown = (globalThis as { PasswordCredential?: unknown }).PasswordCredential;
  return typeof ctor === 'function' ? (ctor as PasswordCredentialCtor) : undefined;
}

/** Whether this browser can keep secrets in its credential store (PasswordCredential). */
export function credentialStoreAvailable(): boolean {
  return passwordCredentialCtor() !== undefined && typeof navigator.credentials?.store === 'function';
}

/**
 * Asks the browser to keep `secret` under `id` in its password manager. Resolves false where
 * the API is missing or the user declined.
 */
export async function storeSecret(id: string, secret: string, name: string): Promise<boolean> {
  const Ctor = passwordCredentialCtor();
  if (!Ctor || !navigator.credentials) return false;
  try {
    await navigator.credentials.store(new Ctor({ id, password: secret, name }));
    return true;
  } catch {
    return false;
  }
}

/**
 * A secret the browser keeps for this origin whose id starts with `prefix`, or null. The
 * browser asks the user to choose (mediation "optional"); nothing is read without them.
 */
export async function loadSecret(prefix: string): Promise<{ id: string; secret: string } | null> {
  if (!credentialStoreAvailable()) return null;
  const options = { password: true, mediation: 'optional' } as CredentialRequestOptions;
  const got: unknown = await navigator.credentials.get(options);
  if (typeof got !== 'object' || got === null) return null;
  const cred = got as StoredPassword;
  if (cred.type !== 'password' || typeof cred.password !== 'string' || !cred.id.startsWith(prefix)) return null;
  return { id: cred.id, secret: cred.password };
}

/** A new user key, made in the page. */
export function newSecretKey(): Uint8Array {
  return generateSecretKey();
}

export { bytesToHex, hexToBytes };
