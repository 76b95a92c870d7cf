/**
 * A small request/answer protocol over Node's IPC channel, so each part of the bench (relay,
 * vaults, bridge, peer) runs in its own process and reports its own CPU time and memory.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

interface Call {
  id: number;
  op: string;
  args: unknown;
}
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** CPU time (µs) and memory (bytes) of one process, as it measures itself. */
export interface ProcessStats {
  userUs: number;
  systemUs: number;
  rss: number;
  maxRss: number;
  heapUsed: number;
  /** The V8 heap's committed size: live objects plus free space V8 has not given back. */
  heapTotal: number;
}

export function ownStats(): ProcessStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { userUs: cpu.user, systemUs: cpu.system, rss: mem.rss, maxRss: process.resourceUsage().maxRSS * 1024, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal };
}

/** The CPU profiler of this process, while one runs (BENCH_PROFILE). */
let profiler: Session | undefined;

/** Starts profiling this process's CPU. */
async function startProfile(): Promise<null> {
  profiler ??= new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
  return null;
}

/** Stops profiling and writes the profile (Chrome DevTools format) to `file`. */
async function stopProfile(file: string): Promise<null> {
  if (!profiler) throw new Error('no profile is running');
  const { profile } = await profiler.post('Profiler.stop');
  profiler.disconnect();
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(profile));
  return null;
}

/** In a child: answers calls with `handlers`; `stats`, `exit` and the profiler's `profileStart` and `profileStop` are built in. */
export function serve(handlers: Record<string, (args: any) => unknown>): void {
  const send = (reply: Reply) => process.send?.(reply);
  process.on('message', (message: Call) => {
    void (async () => {
      try {
        if (message.op === 'stats') return send({ id: message.id, ok: true, value: ownStats() });
        if (message.op === 'profileStart') return send({ id: message.id, ok: true, value: await startProfile() });
        if (message.op === 'profileStop') return send({ id: message.id, ok: true, value: await stopProfile(String(message.args)) });
        if (message.op === 'exit') {
          send({ id: message.id, ok: true, value: null });
          setTimeout(() => process.exit(0), 20);
          return;
        }
        const handler = handlers[message.op];
        if (!handler) throw new Error(`no operation ${message.op}`);
        send({ id: message.id, ok: true, value: await handler(message.args) });
      } catch (error) {
        send({ id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
    })();
  });
  process.on('disconnect', () => process.exit(0));
}

/** A bench part in its own Node process (the same Node that runs the bench). */
export class Part {
  readonly name: string;
  readonly child: ChildProcess;
  readonly startedAt = performance.now();
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(name: string, script: string, execArgv: string[] = []) {
    this.name = name;
    this.child = fork(path.join(import.meta.dirname, '..', 'procs', script), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--disable-warning=ExperimentalWarning', ...execArgv],
    });
    this.child.on('message', (reply: Reply) => {
      const waiting = this.#pending.get(reply.id);
      if (!waiting) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(new Error(`${name}: ${reply.error}`));
    });
    this.child.on('exit', (code) => {
      for (const waiting of this.#pending.values()) waiting.reject(new Error(`${name} exited (${code})`));
      this.#pending.clear();
    });
  }

  call<T>(op: string, args: unknown = null): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, args } satisfies Call);
    });
  }

  stats(): Promise<ProcessStats> {
    return this.call<ProcessStats>('stats');
  }

  /** Asks the part to exit, and kills it if it has not after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.call('exit').catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** CPU ms a part spent between two snapshots. */
export function cpuMs(before: ProcessStats, after: ProcessStats): number {
  return (after.userUs - before.userUs + after.systemUs - before.systemUs) / 1000;
}
