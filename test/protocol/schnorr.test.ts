import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as backend from '../../src/protocol/schnorr.ts';
import { schnorrSuite } from './schnorr-suite.ts';

// The backend this process uses: native wherever libsecp256k1-dev was there for `npm ci`.
schnorrSuite(backend);

it('uses the native backend where libsecp256k1 is installed (a failed build would fall back unseen)', () => {
  if (!existsSync('/usr/include/secp256k1_schnorrsig.h') || process.env.SECP256K1_BACKEND === 'wasm') return;
  expect(backend.schnorrBackend).toBe('native');
});
