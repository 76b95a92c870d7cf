/** Bench part: the devnet's vault operators, auditor and simulated Lightning network, without a relay. */
import { startDevnet, type Devnet } from '../../src/devnet/devnet.ts';
import { serve } from '../lib/ipc.ts';

let devnet: Devnet | undefined;

serve({
  async start(args: { operators: number }) {
    devnet = await startDevnet({ dataDir: null, relay: false, controlPort: 0, operatorPorts: Array(args.operators).fill(0), auditorPort: 0, operators: args.operators });
    return { controlUrl: devnet.controlUrl, vaultsFile: devnet.vaultsFile };
  },
  async pay(args: { invoice: string }) {
    if (!devnet) throw new Error('not started');
    const outcome = await devnet.payInvoice(args.invoice);
    if (outcome.state === 'failed') throw new Error(`payment failed: ${outcome.reason}`);
    return outcome.state;
  },
  payeeInvoice(args: { amountMsat: string }) {
    if (!devnet) throw new Error('not started');
    return devnet.createPayeeInvoice(BigInt(args.amountMsat)).invoice;
  },
});
