import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { z } from 'zod';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import { loadMasterKey } from '../../src/ops/master-key.ts';
import { parseVaultsFile } from '../../src/vault-client/vaults-file.ts';
import { pino } from 'pino';
import { createPostgresDatabase } from '../helpers/database.ts';
import { startProcess } from '../helpers/process.ts';
import { startWorld, type World } from '../helpers/world.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** The parts of fly.toml the bridge depends on; anything missing fails the parse, naming it. */
const flySchema = z.object({
  app: z.string().min(1),
  primary_region: z.string().min(1),
  kill_signal: z.literal('SIGTERM'),
  build: z.object({ dockerfile: z.string() }),
  deploy: z.object({ release_command: z.string(), strategy: z.string() }),
  env: z.record(z.string(), z.string()),
  files: z.array(z.object({ guest_path: z.string(), local_path: z.string() })),
  processes: z.object({ app: z.string() }),
  http_service: z.object({
    internal_port: z.number().int(),
    auto_stop_machines: z.string(),
    min_machines_running: z.number().int(),
    processes: z.array(z.string()),
    checks: z.array(z.object({ method: z.string(), path: z.string(), interval: z.string(), timeout: z.string(), grace_period: z.string() })).min(1),
  }),
  metrics: z.object({ port: z.number().int(), path: z.string() }),
});

const fly = flySchema.parse(parse(read('fly.toml')));
const dockerfile = read('Dockerfile');

/** The commands `deposit-bridge --help` lists: what commander really registered. */
async function cliCommands(): Promise<string[]> {
  const proc = startProcess(['--help'], {});
  expect(await proc.exited).toBe(0);
  const section = proc.stdout().split(/^Commands:$/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!);
}

/** `node bin/deposit-bridge.js <command>` → the command, after checking the program part. */
function commandOf(line: string[]): string {
  expect(line.slice(0, 2)).toEqual(['node', 'bin/deposit-bridge.js']);
  expect(existsSync(path.join(ROOT, line[1]!))).toBe(true);
  return line[2]!;
}

describe('fly.toml and the Dockerfile against the code', () => {
  it('name CLI commands that exist: migrate as the release command, start as the process', async () => {
    const commands = await cliCommands();
    expect(commands).toEqual(expect.arrayContaining(['start', 'migrate']));
    expect(commandOf(fly.deploy.release_command.split(/\s+/))).toBe('migrate');
    const appCommand = fly.processes.app.split(/\s+/);
    expect(commandOf(appCommand)).toBe('start');
    expect(commands).toContain(appCommand[2]);
    // The image runs the same command when started without fly.toml's process.
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(JSON.parse(cmd ?? 'null')).toEqual(appCommand);
    expect(dockerfile).not.toMatch(/^ENTRYPOINT/m);
    expect(fly.build.dockerfile).toBe('Dockerfile');
  });

  it('run node with the V8 flags `npm start` uses', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start.split(/\s+/);
    const flags = start.filter((a) => a.startsWith('--'));
    expect(flags).toContain('--max-semi-space-size=32');
    expect(/^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1]?.split(/\s+/)).toEqual(flags);
  });

  it('listen, expose and health-check on the port the config reads', () => {
    const config = loadConfig({ ...fly.env, DATABASE_URL: 'postgres://u@db.internal:5432/bridge' });
    expect(config.httpHost).toBe('0.0.0.0');
    expect(config.httpPort).toBe(fly.http_service.internal_port);
    // The config's own default is the port everything assumes.
    expect(loadConfig({}).httpPort).toBe(fly.http_service.internal_port);
    expect(/^EXPOSE (\d+)$/m.exec(dockerfile)?.[1]).toBe(String(fly.http_service.internal_port));
    expect(/HTTP_PORT=(\d+)/.exec(dockerfile)?.[1]).toBe(String(fly.http_service.internal_port));
    expect(fly.metrics.port).toBe(fly.http_service.internal_port);
    expect(fly.http_service.processes).toEqual(['app']);
  });

  it('run several machines that never stop for idleness (they hold relay subscriptions)', () => {
    expect(fly.http_service.min_machines_running).toBeGreaterThanOrEqual(2);
    expect(fly.http_service.auto_stop_machines).toBe('off');
    expect(fly.deploy.strategy).toBe('rolling');
  });

  it('keep secrets out of the file: the master key and database URL come from Fly secrets', () => {
    for (const name of ['MASTER_KEY', 'MASTER_KEY_FILE', 'DATABASE_URL']) expect(fly.env).not.toHaveProperty(name);
    expect(read('fly.toml')).not.toMatch(/[0-9a-f]{64}/);
    // Without the secret, a production start refuses rather than generating a key per machine.
    const config = loadConfig({ ...fly.env, DATABASE_URL: 'postgres://u@db.internal:5432/bridge' });
    expect(() => loadMasterKey(config, pino({ level: 'silent' }))).toThrow(/MASTER_KEY or MASTER_KEY_FILE is required/);
  });

  it('configure real relays and a vaults file Fly writes into each machine, so no devnet part starts', () => {
    const config = loadConfig({ ...fly.env, DATABASE_URL: 'postgres://u@db.internal:5432/bridge' });
    expect(config.nwcRelays?.length).toBeGreaterThan(0);
    for (const relay of config.nwcRelays ?? []) expect(relay).toMatch(/^wss:\/\//);
    expect(fly.files.map((f) => f.guest_path)).toContain(fly.env.VAULTS_FILE);
    const example = fly.files.find((f) => f.guest_path === fly.env.VAULTS_FILE)!.local_path.replace(/\.json$/, '.example.json');
    const parsed = parseVaultsFile(read(example), example);
    expect(parsed.ok ? null : parsed.error.message).toBeNull();
    expect(config.publicUrl).toMatch(/^https:\/\//);
  });

  it('build an image from sources, migrations and production dependencies only, never local state or keys', () => {
    for (const part of ['bin', 'src', 'migrations']) expect(dockerfile).toMatch(new RegExp(`^COPY ${part} \\./${part}$`, 'm'));
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    // The account page and web wallet: their HTML and CSS, and the bundles built in the image.
    for (const file of ['account.html', 'wallet.html', 'style.css']) expect(existsSync(path.join(ROOT, 'web', file))).toBe(true);
    expect(dockerfile).toMatch(/^COPY web\/account\.html web\/wallet\.html web\/style\.css \.\/web\/$/m);
    expect(dockerfile).toMatch(/^RUN node web\/build\.ts$/m);
    expect(dockerfile).toMatch(/^COPY --from=web \/app\/web\/dist \.\/web\/dist$/m);
    expect(dockerfile).toMatch(/^FROM node:24/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const entry of ['data', 'node_modules', 'web/dist', '.env', '**/master.key', '.git']) expect(ignored).toContain(entry);
  });

  it('runs the release command as Fly does, with fly.toml [env] and DATABASE_URL: every migration applied', async () => {
    const database = await createPostgresDatabase();
    try {
      const [, , command] = fly.deploy.release_command.split(/\s+/);
      const proc = startProcess([command!], { ...fly.env, DATABASE_URL: database.url });
      expect(await proc.exited).toBe(0);
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const { rows } = await client.query<{ name: string }>('select name from kysely_migration order by name');
        const files = readdirSync(path.join(ROOT, 'migrations')).map((f) => f.replace(/\.ts$/, '')).sort();
        expect(rows.map((r) => r.name)).toEqual(files);
      } finally {
        await client.end();
      }
    } finally {
      await database.drop();
    }
  });
});

describe("fly.toml's health check and metrics paths on a running bridge", () => {
  let world: World;
  beforeAll(async () => {
    world = await startWorld('pglite');
  });
  afterAll(async () => {
    await world?.stop();
  });

  it('answer 200: the health check with a ready status, the metrics in the Prometheus text format', async () => {
    for (const check of fly.http_service.checks) {
      const response = await fetch(`${world.bridge.url}${check.path}`, { method: check.method });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ status: 'ok' });
    }
    const metrics = await fetch(`${world.bridge.url}${fly.metrics.path}`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toMatch(/^# TYPE deposit_bridge_nwc_requests_total counter$/m);
  });
});
