/** Bench part: the devnet relay alone, so its CPU (signature checks, filter matching) is its own. */
import { startRelay, type DevnetRelay } from '../../src/devnet/relay.ts';
import { serve } from '../lib/ipc.ts';

let relay: DevnetRelay | undefined;

serve({
  async start(args: { retentionSeconds: number }) {
    relay = await startRelay({ port: 0, ephemeralRetentionSeconds: args.retentionSeconds });
    return { url: relay.url };
  },
  /** Open subscriptions of each connected socket. */
  subscriptionCounts: () => relay?.subscriptionCounts() ?? [],
});
