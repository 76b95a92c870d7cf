import { z } from 'zod';

export { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';

/** 32 bytes as 64 lowercase hex characters (x-only keys, hashes, ids). */
export const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex characters');

/** A compressed secp256k1 public key (Lightning node key): 33 bytes, 66 hex characters. */
export const compressedPubkeyHex = z.string().regex(/^0[23][0-9a-f]{64}$/, 'expected a 33-byte compressed public key in hex');

/** 64 bytes as 128 lowercase hex characters (BIP-340 signatures). */
export const hex64 = z.string().regex(/^[0-9a-f]{128}$/, 'expected 128 lowercase hex characters');
