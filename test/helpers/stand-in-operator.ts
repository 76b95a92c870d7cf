import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { Db } from '../../src/db/database.ts';
import { OperatorDirectory } from '../../src/deposits/operators.ts';
import { silentLogger } from '../../src/log.ts';
import type { VaultInfo } from '../../src/protocol/vault-api.ts';
import { signBalanceUpdate, vaultMultisigPubkey, type BalanceUpdate } from '../../src/protocol/vault-proof.ts';
import type { VaultClient } from '../../src/vault-client/vault-client.ts';
import { randomHex32 } from './deposit-rows.ts';

/**
 * A vault operator the bridge knows (node keys from its /v0/info) without a server: its client
 * answers `info` only. Tests of money rows use it to sign balance updates as both channel peers
 * would, so the bridge's signature checks run for real.
 */
export async function standInOperator(db: Db): Promise<{ operators: OperatorDirectory; nodePubkey: string; signBalance(depositId: string, balanceMsat: bigint, seq?: number): BalanceUpdate }> {
  const operatorSecret = secp256k1.utils.randomSecretKey();
  const peerSecret = secp256k1.utils.randomSecretKey();
  const nodePubkey = bytesToHex(secp256k1.getPublicKey(operatorSecret, true));
  const peerPubkey = bytesToHex(secp256k1.getPublicKey(peerSecret, true));
  const vaultId = randomHex32();
  const channelId = randomHex32();
  const info: VaultInfo = {
    version: '0',
    operator: { node_pubkey: nodePubkey, alias: 'stand-in' },
    peer: { node_pubkey: peerPubkey },
    network: 'regtest',
    block_height: 101,
    vaults: [{ vault_id: vaultId, channel_id: channelId, multisig_pubkey: vaultMultisigPubkey(nodePubkey, peerPubkey, channelId, vaultId) }],
    fees: { routing_base_msat: 0n, routing_ppm: 0, maintenance: { unit_fee_msat: 0n, period_blocks: 144, rate_fee_ppm: 0, rate_period_blocks: 52_560 } },
    limits: { min_invoice_msat: 1n, max_invoice_msat: 10n ** 12n, max_deposit_msat: 10n ** 13n },
    auditors: [],
    request_max_age_seconds: 300,
  };
  const client = fakeVaultClient('http://stand-in.invalid', { info: async () => info });
  const operators = new OperatorDirectory(db, () => client, silentLogger);
  await operators.connect([{ name: 'stand-in', url: client.url }]);
  let nextSeq = 1;
  return {
    operators,
    nodePubkey,
    signBalance: (depositId, balanceMsat, seq = nextSeq++) =>
      signBalanceUpdate({ deposit_id: depositId, vault_id: vaultId, channel_id: channelId, balance_msat: balanceMsat, seq, created_at: 1_700_000_000 }, operatorSecret, peerSecret),
  };
}

/**
 * A VaultClient that serves only `served`: every other call is refused, and its event stream
 * never delivers anything. For tests that need an operator without a vault behind it.
 */
export function fakeVaultClient(url: string, served: Partial<VaultClient>): VaultClient {
  const unavailable = () => Promise.reject(new Error(`not served by the fake operator at ${url}`));
  return {
    url,
    info: unavailable,
    openDeposit: unavailable,
    depositStatus: unavailable,
    createInvoice: unavailable,
    invoiceStatus: unavailable,
    createHoldInvoice: unavailable,
    settleHoldInvoice: unavailable,
    cancelHoldInvoice: unavailable,
    pay: unavailable,
    paymentStatus: unavailable,
    pushGrant: unavailable,
    lock: unavailable,
    metrics: unavailable,
    subscribeEvents: () => ({ close: () => undefined }),
    ...served,
  };
}
