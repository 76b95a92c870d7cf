import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A deposit-bridge command running as its own process, as a person starts it. */
export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
}

export function startProcess(args: string[], env: Record<string, string>): RunningProcess {
  const child = spawn(path.join(ROOT, 'node_modules/.bin/node'), [path.join(ROOT, 'bin/deposit-bridge.js'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, exited };
}

/** Waits until the process printed a line matching `pattern`, and returns the match. */
export async function waitForOutput(proc: RunningProcess, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(proc.stdout());
    if (match) return match;
    if (proc.child.exitCode !== null) throw new Error(`process exited (${proc.child.exitCode}) before printing ${pattern}:\n${proc.stdout()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; output so far:\n${proc.stdout()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports on 127.0.0.1 (the devnet takes a base port and the next four). */
/**
 * Ports for `deposit-bridge start` or `devnet` in local mode, from one free range: HTTP, the
 * relay, and DEVNET_PORT with the five after it (control, three vault operators, two auditors).
 */
export async function servicePorts(): Promise<{ httpPort: number; relayPort: number; devnetPort: number }> {
  const [httpPort, relayPort, devnetPort] = (await freePorts(8)) as [number, number, number];
  return { httpPort, relayPort, devnetPort };
}

export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return ports;
  }
  throw new Error('no free port range');
}
