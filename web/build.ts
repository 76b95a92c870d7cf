import path from 'node:path';
import { build } from 'esbuild';

const WEB = import.meta.dirname;

/**
 * Bundles the account page and the web wallet for the browser into web/dist/ (account.js,
 * wallet.js): ES modules, minified, with source maps. Used by `npm run build:web` and by the
 * browser tests.
 */
export async function buildWeb(): Promise<void> {
  await build({
    entryPoints: { account: path.join(WEB, 'src/account.ts'), wallet: path.join(WEB, 'src/wallet.ts') },
    outdir: path.join(WEB, 'dist'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: false,
    logLevel: 'warning',
    legalComments: 'none',
  });
}

if (import.meta.main) await buildWeb();
