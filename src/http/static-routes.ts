import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';

export interface StaticRoutesOptions {
  /** The relays' ws(s):// URLs the web wallet may connect to (the CSP's connect-src). */
  relays: readonly string[];
  /** Where the page sources are (default: the project's web/ folder). */
  webDir?: string;
}

/** The web/ folder, from src/http (run from source) or dist/src/http (compiled). */
function defaultWebDir(): string {
  const candidates = [path.resolve(import.meta.dirname, '../../web'), path.resolve(import.meta.dirname, '../../../web')];
  return candidates.find((dir) => existsSync(path.join(dir, 'account.html'))) ?? candidates[0]!;
}

/** Every file served, by URL path: a fixed list, so no request names a file on disk. */
const FILES: Record<string, { file: string; type: string; page?: boolean }> = {
  '/account': { file: 'account.html', type: 'text/html; charset=utf-8', page: true },
  '/wallet': { file: 'wallet.html', type: 'text/html; charset=utf-8', page: true },
  '/assets/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/assets/account.js': { file: 'dist/account.js', type: 'text/javascript; charset=utf-8' },
  '/assets/wallet.js': { file: 'dist/wallet.js', type: 'text/javascript; charset=utf-8' },
};

/**
 * The Content-Security-Policy of the pages: scripts and styles from this origin only (no
 * inline code), images from this origin or data: URLs, network to this origin and the relays.
 */
export function contentSecurityPolicy(relays: readonly string[]): string {
  const wsRelays = relays.filter((r) => /^wss?:\/\/[^\s;,'"]+$/.test(r));
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${wsRelays.join(' ')}`.trim(),
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * Serves the account page and the web wallet (web/*.html, web/style.css and the bundle that
 * `npm run build:web` writes to web/dist/). A bundle not built yet answers 503 saying so.
 */
export function registerStaticRoutes<L extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>, options: StaticRoutesOptions): void {
  const webDir = options.webDir ?? defaultWebDir();
  const csp = contentSecurityPolicy(options.relays);
  app.get('/', async (_req, reply) => reply.redirect('/account', 302));
  for (const [url, entry] of Object.entries(FILES)) {
    app.get(url, async (_req, reply) => {
      let content: Buffer;
      try {
        content = await readFile(path.join(webDir, entry.file));
      } catch {
        return reply
          .status(503)
          .type('text/plain; charset=utf-8')
          .send(entry.file.startsWith('dist/') ? 'the web bundle is not built: run `npm run build:web`' : 'page not found on the server');
      }
      void reply
        .header('content-type', entry.type)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache');
      if (entry.page) void reply.header('content-security-policy', csp).header('x-frame-options', 'DENY');
      return reply.send(content);
    });
  }
}
