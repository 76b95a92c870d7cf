import { schnorrSuite } from './schnorr-suite.ts';

// The WASM backend, as on a machine without libsecp256k1 (each test file has its own modules).
process.env.SECP256K1_BACKEND = 'wasm';
schnorrSuite(await import('../../src/protocol/schnorr.ts'));
