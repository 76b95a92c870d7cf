import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { finalizeEvent, getPublicKey, type EventTemplate } from 'nostr-tools/pure';

/** Debian's chromium (installed by .ci/run); never a browser downloaded by playwright. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const SCREENSHOTS = path.resolve(import.meta.dirname, '../../test-results');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  /** Console errors and uncaught page errors seen so far (a CSP violation shows up here). */
  problems: string[];
  newPage(): Promise<Page>;
  screenshot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Chromium with a fresh profile. With `nip07Key`, every page gets a NIP-07 signer
 * (window.nostr) backed by that key, which stays in the test process: the page asks, the test signs.
 */
export async function launchBrowser(options: { nip07Key?: Uint8Array } = {}): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install -y chromium`);
  const profile = mkdtempSync(path.join(tmpdir(), 'bridge-chromium-'));
  // launchPersistentContext is playwright's way of giving chromium its --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(30_000);
  const problems: string[] = [];
  if (options.nip07Key) {
    const key = options.nip07Key;
    await context.exposeFunction('__testNip07Sign', (template: EventTemplate) => finalizeEvent(template, key));
    await context.addInitScript({
      content: `window.nostr = { getPublicKey: async () => ${JSON.stringify(getPublicKey(key))}, signEvent: async (t) => window.__testNip07Sign(t) };`,
    });
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    context,
    problems,
    newPage: async () => {
      const page = await context.newPage();
      page.on('console', (msg) => {
        // An API answering 4xx is logged by chromium as a failed resource: expected, not a problem.
        if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console: ${msg.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      return page;
    },
    screenshot: async (page, name) => {
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
