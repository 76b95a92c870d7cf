import { generateSecretKey, type Event } from 'nostr-tools/pure';
import { startDevnet, type Devnet, type DevnetOptions } from '../../src/devnet/devnet.ts';
import { signDepositOpen } from '../../src/protocol/user-statements.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import type { Keypair } from './authorization.ts';

/** A devnet in memory on free ports, with a fast auditor. */
export function startTestDevnet(options: Partial<DevnetOptions> = {}): Promise<Devnet> {
  return startDevnet({
    dataDir: null,
    relayPort: 0,
    controlPort: 0,
    operatorPorts: [0, 0, 0],
    auditorPort: 0,
    auditIntervalMs: 1_000,
    ...options,
  });
}

/** A client for each operator, signing with one caller (bridge) key: NIP-98 on every call, or in sessions. */
export function clientsFor(devnet: Devnet, callerKey: Uint8Array = generateSecretKey(), options: { sessions?: boolean } = {}): HttpVaultClient[] {
  return devnet.operators.map((op) => new HttpVaultClient({ url: op.url, secretKey: callerKey, ...options }));
}

/** Polls until `check` holds (or fails the test after `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Opens the user's deposit at the operator and funds it from the external payer. Returns its id. */
export async function fundedDeposit(devnet: Devnet, client: HttpVaultClient, user: Keypair, amountMsat: bigint, open: Event = signDepositOpen(user.secretKey)): Promise<string> {
  const deposit = await client.openDeposit(open);
  const invoice = await client.createInvoice(deposit.deposit_id, { amountMsat });
  const paid = await devnet.payInvoice(invoice.invoice);
  if (paid.state !== 'settled') throw new Error(`funding failed: ${paid.reason}`);
  return deposit.deposit_id;
}
