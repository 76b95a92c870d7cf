/** The bench's table and its ratios against the targets of issue 7. */

export interface Results {
  date: string;
  mode: 'full' | 'smoke';
  /** `schnorr`: the BIP-340 backend of every process of the run (src/protocol/schnorr.ts). */
  machine: { cpus: number; cpuModel: string; node: string; schnorr: string; loadavg: number[] };
  config: unknown;
  sections: {
    crypto?: { cpuMsPerRequest: number; requestsPerSecondPerCore: number; steps: Record<string, number>; conversationKeyMs: number };
    peer?: Service;
    bridgePostgres?: Service;
    bridgePglite?: Service;
    payInvoice?: {
      payers: number;
      payees: number;
      maxRate: Service & { vaultsCpuMsPerRequest: number; cpuShare: { bridge: number; database?: number; relay: number; vaults: number; loadgen: number } };
      halfRate: {
        targetRate: number;
        ok: number;
        errors: number;
        errorSamples?: string[];
        throughput: number;
        p50: number;
        p99: number;
        bridgeAddedP50: number;
        bridgeAddedP99: number;
        databaseP50?: number;
        databaseP99?: number;
        vaultP50: number;
        vaultP99: number;
        split: { bridgeMs: number; databaseMs?: number; vaultsMs: number; relayAndTransportMs: number };
      };
    };
    scale?: { connections: number; startupMs: number; rssMb: number; heapMb?: number; heapTotalMb?: number; subscriptionsPerRelay: number; getBalanceP50: number; getBalanceP95: number; errors: number }[];
  };
  errors: Record<string, string>;
  ratios?: Ratio[];
  totalSeconds?: number;
}

interface Service {
  clients: number;
  ok: number;
  errors: number;
  errorSamples?: string[];
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  cpuMsPerRequest: number;
  systemCpuMsPerRequest?: number;
  relayCpuMsPerRequest: number;
  loadgenCpuMsPerRequest: number;
  databaseCpuMsPerRequest?: number | null;
  /** Crypto-only CPU per request in bursts during the timed loop. */
  concurrentCryptoCpuMsPerRequest?: number;
  rssMb: number;
  maxRssMb: number;
}

export interface Ratio {
  what: string;
  measured: number;
  unit: string;
  target: string;
  met: boolean;
}

const f = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits));

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i === 0 ? ':' : '') + '-'.repeat(w + 1) + (i === 0 ? '' : ':')).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

/** The target ratios, computed from whatever sections ran. */
export function ratios(r: Results): Ratio[] {
  const out: Ratio[] = [];
  const { crypto, peer, bridgePostgres, bridgePglite, payInvoice, scale } = r.sections;
  for (const [label, bridge] of [
    ['PostgreSQL', bridgePostgres],
    ['PGlite', bridgePglite],
  ] as const) {
    if (!bridge) continue;
    // Each CPU figure is taken relative to the crypto-only cost measured during its own timed loop, where there is one.
    const unit = (s: Service) => s.concurrentCryptoCpuMsPerRequest ?? crypto?.cpuMsPerRequest;
    const bridgeUnit = unit(bridge);
    if (bridgeUnit !== undefined) {
      const ratio = bridge.cpuMsPerRequest / bridgeUnit;
      out.push({ what: `bridge CPU per get_balance ÷ crypto-only during it (${label})`, measured: ratio, unit: '×', target: '≤ 1.5', met: ratio <= 1.5 });
    }
    // And against the crypto-only loop run alone (section 1), on a quieter machine at another moment.
    if (crypto && bridge.concurrentCryptoCpuMsPerRequest !== undefined) {
      const ratio = bridge.cpuMsPerRequest / crypto.cpuMsPerRequest;
      out.push({ what: `bridge CPU per get_balance ÷ crypto-only alone (${label})`, measured: ratio, unit: '×', target: '≤ 1.5', met: ratio <= 1.5 });
    }
    if (peer) {
      const peerUnit = unit(peer);
      const ratio = bridgeUnit !== undefined && peerUnit !== undefined ? bridge.cpuMsPerRequest / bridgeUnit / (peer.cpuMsPerRequest / peerUnit) : bridge.cpuMsPerRequest / peer.cpuMsPerRequest;
      out.push({ what: `bridge CPU per get_balance ÷ peer's (${label})`, measured: ratio, unit: '×', target: '≤ 0.33', met: ratio <= 1 / 3 });
      out.push({ what: `bridge throughput ÷ peer's (${label})`, measured: bridge.throughput / peer.throughput, unit: '×', target: '≥ 1.5', met: bridge.throughput / peer.throughput >= 1.5 });
    }
  }
  if (payInvoice) {
    out.push({ what: 'pay_invoice throughput (PostgreSQL, 2+ vaults)', measured: payInvoice.maxRate.throughput, unit: '/s', target: '≥ 200', met: payInvoice.maxRate.throughput >= 200 });
    out.push({ what: 'bridge-added p99 at half that rate', measured: payInvoice.halfRate.bridgeAddedP99, unit: 'ms', target: '< 50', met: payInvoice.halfRate.bridgeAddedP99 < 50 });
  }
  if (scale && scale.length > 0) {
    const small = scale[0]!;
    const large = scale[scale.length - 1]!;
    const n = large.connections.toLocaleString('en-US');
    out.push({ what: `start-up with ${n} connections`, measured: large.startupMs / 1000, unit: 's', target: '< 30', met: large.startupMs < 30_000 });
    out.push({ what: `RSS with ${n} connections`, measured: large.rssMb, unit: 'MB', target: '< 300', met: large.rssMb < 300 });
    // Bounded: a few REQs per 5 000 keys, never one per connection.
    const bound = Math.ceil(large.connections / 5_000) + 1;
    out.push({ what: `subscriptions per relay with ${n} connections`, measured: large.subscriptionsPerRelay, unit: '', target: `≤ ${bound} (bounded)`, met: large.subscriptionsPerRelay <= bound });
    out.push({
      what: `get_balance p50 with ${n} ÷ with ${small.connections.toLocaleString('en-US')}`,
      measured: large.getBalanceP50 / small.getBalanceP50,
      unit: '×',
      target: '≤ 2',
      met: large.getBalanceP50 / small.getBalanceP50 <= 2,
    });
  }
  return out;
}

/** The report as Markdown tables (printed by the bench, pasted into the README). */
export function renderReport(r: Results): string {
  const parts: string[] = [];
  const { crypto, peer, bridgePostgres, bridgePglite, payInvoice, scale } = r.sections;
  parts.push(`Bench ${r.mode} run, ${r.date}, ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}, BIP-340 on ${r.machine.schnorr}, load average at start ${r.machine.loadavg.map((l) => l.toFixed(1)).join(' ')}`);
  if (crypto) {
    parts.push(
      `\n1. Crypto-only limit (verify + NIP-44 decrypt with cached key + encrypt + sign): ${f(crypto.cpuMsPerRequest, 3)} ms CPU per request = ${f(crypto.requestsPerSecondPerCore, 0)} requests/s per core` +
        ` (wall time per step, which waits on this machine's other work: verify ${f(crypto.steps.verify, 3)}, decrypt ${f(crypto.steps.decrypt, 3)}, encrypt ${f(crypto.steps.encrypt, 3)}, sign ${f(crypto.steps.sign, 3)} ms; a conversation key, not cached, ${f(crypto.conversationKeyMs, 3)} ms)`,
    );
  }
  const services = [
    ['2. peer: @getalby/sdk NWCWalletService', peer],
    ['3. bridge get_balance, PostgreSQL', bridgePostgres],
    ['3. bridge get_balance, PGlite', bridgePglite],
  ] as const;
  const serviceRows = services.flatMap(([label, s]) =>
    s ? [[label, s.clients, f(s.throughput, 0), f(s.p50, 1), f(s.p95, 1), f(s.p99, 1), `${f(s.cpuMsPerRequest, 2)} (${f(s.systemCpuMsPerRequest, 2)} sys)`, s.databaseCpuMsPerRequest === null || s.databaseCpuMsPerRequest === undefined ? (label.includes('PGlite') ? 'in the bridge' : '—') : f(s.databaseCpuMsPerRequest, 2), f(s.relayCpuMsPerRequest, 2), f(s.loadgenCpuMsPerRequest, 2), f(s.concurrentCryptoCpuMsPerRequest, 2), f(s.rssMb, 0), s.errors]] : [],
  );
  if (serviceRows.length > 0) {
    parts.push('\nget_balance, closed loop, one request in flight per client:\n');
    parts.push(table(['service', 'clients', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'service CPU ms/req', 'PostgreSQL server CPU ms/req', 'relay CPU ms/req', 'load gen CPU ms/req', 'crypto-only ms/req during it', 'RSS MB', 'errors'], serviceRows));
  }
  if (payInvoice) {
    const m = payInvoice.maxRate;
    const h = payInvoice.halfRate;
    parts.push(`\n4. pay_invoice between users across 3 devnet vaults, PostgreSQL, ${payInvoice.payers} paying connections:\n`);
    parts.push(
      table(
        ['load', 'payments/s', 'p50 ms', 'p99 ms', 'bridge-added p50 / p99 ms', 'of which PostgreSQL p50 / p99 ms', 'vault calls p50 / p99 ms', 'errors'],
        [
          [`highest rate (closed loop)`, f(m.throughput, 0), f(m.p50, 1), f(m.p99, 1), '—', '—', '—', m.errors],
          [
            `half of it (open loop, ${f(h.targetRate, 0)}/s)`,
            f(h.throughput, 0),
            f(h.p50, 1),
            f(h.p99, 1),
            `${f(h.bridgeAddedP50, 1)} / ${f(h.bridgeAddedP99, 1)}`,
            `${f(h.databaseP50, 1)} / ${f(h.databaseP99, 1)}`,
            `${f(h.vaultP50, 1)} / ${f(h.vaultP99, 1)}`,
            h.errors,
          ],
        ],
      ),
    );
    parts.push(
      `\nCPU per payment at the highest rate: bridge ${f(m.cpuMsPerRequest, 2)} ms (${f(m.cpuShare.bridge * 100, 0)} %), its PostgreSQL server ${f(m.databaseCpuMsPerRequest ?? undefined, 2)} ms (${f((m.cpuShare.database ?? NaN) * 100, 0)} %), relay ${f(m.relayCpuMsPerRequest, 2)} ms (${f(m.cpuShare.relay * 100, 0)} %), vaults ${f(m.vaultsCpuMsPerRequest, 2)} ms (${f(m.cpuShare.vaults * 100, 0)} %), load generator ${f(m.loadgenCpuMsPerRequest, 2)} ms (${f(m.cpuShare.loadgen * 100, 0)} %).` +
        ` Mean latency at half rate: bridge ${f(h.split.bridgeMs, 1)} ms (of which waiting on PostgreSQL ${f(h.split.databaseMs, 1)} ms), vault calls ${f(h.split.vaultsMs, 1)} ms, relay and transport ${f(h.split.relayAndTransportMs, 1)} ms.`,
    );
    // In crypto-only units the figure hardly moves with the machine's speed, so runs compare.
    const allCpuMs = m.cpuMsPerRequest + (m.databaseCpuMsPerRequest ?? 0) + m.relayCpuMsPerRequest + m.vaultsCpuMsPerRequest + m.loadgenCpuMsPerRequest;
    const cryptoDuring = m.concurrentCryptoCpuMsPerRequest;
    parts.push(
      `\nAll processes together: ${f(allCpuMs, 2)} ms of CPU per payment, at most ${f((r.machine.cpus * 1000) / allCpuMs, 0)} payments/s on ${r.machine.cpus} cores` +
        (cryptoDuring === undefined ? '.' : `; ${f(allCpuMs / cryptoDuring, 1)}× the crypto-only cost measured during this loop (${f(cryptoDuring, 3)} ms).`),
    );
  }
  if (scale && scale.length > 0) {
    parts.push('\n5. Scale (connections written into PostgreSQL, one bridge, one relay):\n');
    parts.push(
      table(
        ['connections', 'start-up s', 'RSS MB', 'heap used / committed MB', 'subscriptions per relay', 'get_balance p50 ms', 'p95 ms', 'errors'],
        scale.map((s) => [s.connections.toLocaleString('en-US'), f(s.startupMs / 1000, 1), f(s.rssMb, 0), `${f(s.heapMb, 0)} / ${f(s.heapTotalMb, 0)}`, s.subscriptionsPerRelay, f(s.getBalanceP50, 1), f(s.getBalanceP95, 1), s.errors]),
      ),
    );
  }
  const rs = r.ratios ?? ratios(r);
  if (rs.length > 0) {
    parts.push('\nTargets:\n');
    parts.push(table(['target', 'measured', 'goal', 'met'], rs.map((x) => [x.what, `${f(x.measured, x.unit === '×' ? 2 : 1)}${x.unit === '×' ? '×' : x.unit ? ' ' + x.unit : ''}`, x.target, x.met ? 'yes' : 'no'])));
  }
  for (const [name, error] of Object.entries(r.errors)) parts.push(`\nsection ${name} failed: ${error.split('\n')[0]}`);
  return parts.join('\n');
}

export function printReport(r: Results): void {
  r.ratios = ratios(r);
  process.stdout.write(renderReport(r) + '\n');
  // What the failed requests were answered, so that errors in a table can be looked into.
  const { peer, bridgePostgres, bridgePglite, payInvoice } = r.sections;
  for (const [name, samples] of [
    ['peer', peer?.errorSamples],
    ['bridge get_balance, PostgreSQL', bridgePostgres?.errorSamples],
    ['bridge get_balance, PGlite', bridgePglite?.errorSamples],
    ['pay_invoice, highest rate', payInvoice?.maxRate.errorSamples],
    ['pay_invoice, half rate', payInvoice?.halfRate.errorSamples],
  ] as const) {
    if (samples && samples.length > 0) process.stdout.write(`errors of ${name}: ${samples.join(' | ')}\n`);
  }
}
