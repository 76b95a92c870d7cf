/**
 * Bench part: the reference, @getalby/sdk's NWCWalletService, answering get_balance from
 * memory for each connection (one subscription per connection, as the SDK does).
 */
import { NWCWalletService, NWCWalletServiceKeyPair } from '@getalby/sdk/nwc';
import { serve } from '../lib/ipc.ts';

let service: NWCWalletService | undefined;
const unsubscribes: (() => void)[] = [];

serve({
  async start(args: { relayUrl: string; connections: { walletSecret: string; clientPubkey: string }[] }) {
    service = new NWCWalletService({ relayUrls: [args.relayUrl] });
    for (const c of args.connections) {
      const keypair = new NWCWalletServiceKeyPair(c.walletSecret, c.clientPubkey);
      unsubscribes.push(
        await service.subscribe(keypair, {
          getBalance: async () => ({ result: { balance: 21_000_000 }, error: undefined }),
        }),
      );
    }
    // Let the relay register every subscription before requests arrive.
    await new Promise((r) => setTimeout(r, 300));
    return null;
  },
  stop() {
    for (const u of unsubscribes) u();
    service?.close();
    return null;
  },
});
