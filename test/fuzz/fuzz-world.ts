import { startBridge, type RunningBridge } from '../../src/app.ts';
import { startDevnet, type Devnet } from '../../src/devnet/devnet.ts';
import { silentLogger, type Logger } from '../../src/log.ts';
import { openTestDatabase } from '../helpers/database.ts';
import { waitFor } from '../helpers/world.ts';

/** What the fuzz suites need of a world. */
export interface FuzzWorld {
  devnet: Devnet;
  bridge: RunningBridge;
  stop(): Promise<void>;
}

/**
 * A devnet and a bridge wired as `startWorld('pglite')` wires them, but on an in-memory PGlite
 * database (`openTestDatabase('pglite')`): the fuzz suites write a row or more per generated
 * input, and PGlite on disk writes files on every commit.
 */
export async function startFuzzWorld(logger: Logger = silentLogger): Promise<FuzzWorld> {
  const devnet = await startDevnet({ dataDir: null, relayPort: 0, controlPort: 0, operatorPorts: [0, 0, 0], auditorPort: 0 });
  const { db } = await openTestDatabase('pglite');
  const masterKey = crypto.getRandomValues(new Uint8Array(32));
  const bridge = await startBridge({
    db,
    masterKey,
    relays: [devnet.relayUrl],
    operators: devnet.vaultsFile.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
    auditors: devnet.vaultsFile.auditors,
    httpHost: '127.0.0.1',
    httpPort: 0,
    alias: 'fuzz-world',
    drainTimeoutMs: 500,
    logger,
    devnet: () => devnet.describe(),
  });
  const world: FuzzWorld = {
    devnet,
    bridge,
    stop: async () => {
      await bridge.stop();
      await devnet.stop();
    },
  };
  await waitFor(async () => (await fetch(`${bridge.url}/health`)).status === 200, 'bridge health');
  return world;
}
