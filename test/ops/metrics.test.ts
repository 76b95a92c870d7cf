import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type RunningBridge } from '../../src/app.ts';
import { openDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { startDevnet, type Devnet } from '../../src/devnet/devnet.ts';
import { silentLogger } from '../../src/log.ts';
import { RawNwcClient } from '../helpers/raw-nwc-client.ts';
import { runCli, waitFor } from '../helpers/world.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (the lines that carry samples). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of one sample (0 when absent, as Prometheus counts an unseen counter). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

describe('GET /metrics on a running bridge', () => {
  let devnet: Devnet;
  let bridge: RunningBridge;
  let client: RawNwcClient;
  const scrape = async () => {
    const response = await fetch(`${bridge.url}/metrics`);
    expect(response.status).toBe(200);
    return parseMetrics(await response.text());
  };

  beforeAll(async () => {
    devnet = await startDevnet({ dataDir: null, relayPort: 0, controlPort: 0, operatorPorts: [0, 0, 0], auditorPort: 0 });
    const { db } = await openDatabase({});
    await migrateToLatest(db);
    bridge = await startBridge({
      db,
      masterKey: crypto.getRandomValues(new Uint8Array(32)),
      relays: [devnet.relayUrl],
      operators: devnet.vaultsFile.operators.map((o) => ({ name: o.name, url: o.url, nodePubkey: o.node_pubkey })),
      auditors: devnet.vaultsFile.auditors,
      httpHost: '127.0.0.1',
      httpPort: 0,
      alias: 'metrics-bridge',
      drainTimeoutMs: 500,
      reconcileIntervalSeconds: 1,
      logger: silentLogger,
    });
    await waitFor(async () => (await fetch(`${bridge.url}/health`)).status === 200, 'bridge health');
    // A budget of 30 000 sat: the second 20 000 sat payment is refused by it.
    client = new RawNwcClient((await runCli(['connect', '--url', bridge.url, '--budget-sat', '30000', '--renewal', 'never'])).lastLine, 'nip44_v2');
  });

  afterAll(async () => {
    client?.close();
    await bridge?.stop();
    await devnet?.stop();
  });

  it('counts requests by method and outcome with their latency, and refusals by reason', async () => {
    const made = await client.request('make_invoice', { amount: 100_000_000 });
    expect(made.error).toBeNull();
    await devnet.payInvoice(made.result.invoice);
    await waitFor(async () => (await client.request('lookup_invoice', { payment_hash: made.result.payment_hash })).result?.state === 'settled', 'funded');
    const first = await client.request('pay_invoice', { invoice: devnet.createPayeeInvoice(20_000_000n).invoice });
    expect(first.error).toBeNull();
    const second = await client.request('pay_invoice', { invoice: devnet.createPayeeInvoice(20_000_000n).invoice });
    expect(second.error?.code).toBe('QUOTA_EXCEEDED');
    const unknown = await client.request('no_such_method_' + 'x'.repeat(40));
    expect(unknown.error?.code).toBe('NOT_IMPLEMENTED');

    const samples = await scrape();
    expect(valueOf(samples, 'deposit_bridge_nwc_requests_total', { method: 'make_invoice', outcome: 'success' })).toBe(1);
    expect(valueOf(samples, 'deposit_bridge_nwc_requests_total', { method: 'pay_invoice', outcome: 'success' })).toBe(1);
    expect(valueOf(samples, 'deposit_bridge_nwc_requests_total', { method: 'pay_invoice', outcome: 'QUOTA_EXCEEDED' })).toBe(1);
    // An unserved method is counted under one label, whatever the app sent.
    expect(valueOf(samples, 'deposit_bridge_nwc_requests_total', { method: 'unknown', outcome: 'NOT_IMPLEMENTED' })).toBe(1);
    expect(samples.some((s) => s.labels.method?.startsWith('no_such_method'))).toBe(false);
    const lookups = valueOf(samples, 'deposit_bridge_nwc_requests_total', { method: 'lookup_invoice', outcome: 'success' });
    expect(lookups).toBeGreaterThanOrEqual(1);
    // Each answered request is one latency observation, in the bucket series too.
    expect(valueOf(samples, 'deposit_bridge_nwc_request_duration_seconds_count', { method: 'pay_invoice' })).toBe(2);
    expect(valueOf(samples, 'deposit_bridge_nwc_request_duration_seconds_bucket', { method: 'pay_invoice', le: '+Inf' })).toBe(2);
    expect(valueOf(samples, 'deposit_bridge_nwc_request_duration_seconds_count', { method: 'lookup_invoice' })).toBe(lookups);
    expect(valueOf(samples, 'deposit_bridge_nwc_request_duration_seconds_sum', { method: 'pay_invoice' })).toBeGreaterThan(0);
    expect(valueOf(samples, 'deposit_bridge_refused_authorizations_total', { reason: 'QUOTA_EXCEEDED' })).toBe(1);
    expect(valueOf(samples, 'deposit_bridge_refused_authorizations_total', { reason: 'NOT_IMPLEMENTED' })).toBe(0);
  });

  it('shows payments in flight while a vault holds them, and none once they settle', async () => {
    for (const op of devnet.operators) op.faults.holdPayments = true;
    const answer = client.request('pay_invoice', { invoice: devnet.createPayeeInvoice(1_000_000n).invoice });
    await waitFor(async () => valueOf(await scrape(), 'deposit_bridge_payments_in_flight') === 1, 'one payment in flight');
    for (const op of devnet.operators) {
      op.faults.holdPayments = false;
      op.releasePayments();
    }
    expect((await answer).error).toBeNull();
    await waitFor(async () => valueOf(await scrape(), 'deposit_bridge_payments_in_flight') === 0, 'no payment in flight');
  });

  it('reports each operator with its availability and score, as the API does', async () => {
    const info = (await (await fetch(`${bridge.url}/api/info`)).json()) as { operators: { name: string; node_pubkey: string; score: number; available: boolean }[] };
    expect(info.operators).toHaveLength(3);
    devnet.operators[0]!.faults.down = true;
    try {
      // A call that fails marks the operator unavailable; the metrics say so.
      await waitFor(async () => {
        await client.request('make_invoice', { amount: 1_000 });
        return valueOf(await scrape(), 'deposit_bridge_operator_available', { node_pubkey: devnet.operators[0]!.nodePubkey }) === 0;
      }, 'operator seen down');
    } finally {
      devnet.operators[0]!.faults.down = false;
    }
    const samples = await scrape();
    for (const op of info.operators) {
      expect(valueOf(samples, 'deposit_bridge_operator_score', { operator: op.name, node_pubkey: op.node_pubkey })).toBeCloseTo(op.score, 6);
    }
    for (const op of devnet.operators.slice(1)) expect(valueOf(samples, 'deposit_bridge_operator_available', { node_pubkey: op.nodePubkey })).toBe(1);
    await waitFor(async () => valueOf(await scrape(), 'deposit_bridge_operator_available', { node_pubkey: devnet.operators[0]!.nodePubkey }) === 1, 'operator back');
  });

  it('reports the differences the periodic reconciliation finds, and the job runs', async () => {
    const before = await scrape();
    expect(valueOf(before, 'deposit_bridge_job_leader')).toBe(1);
    expect(valueOf(before, 'deposit_bridge_reconciliation_differences')).toBe(0);
    const deposit = await bridge.wallet.db.selectFrom('deposits').selectAll().where('confirmed_msat', '>', 0n).orderBy('id').executeTakeFirstOrThrow();
    const operator = devnet.operators.find((o) => o.nodePubkey === deposit.operator_pubkey)!;
    operator.faults.misreportBalanceMsat = 1_234_000n;
    try {
      await waitFor(async () => valueOf(await scrape(), 'deposit_bridge_reconciliation_differences') === 1, 'the difference reported', 30_000);
    } finally {
      operator.faults.misreportBalanceMsat = 0n;
    }
    await waitFor(async () => valueOf(await scrape(), 'deposit_bridge_reconciliation_differences') === 0, 'no difference once the vault reports right', 30_000);
    const after = await scrape();
    expect(valueOf(after, 'deposit_bridge_reconciliation_deposits', { status: 'agrees' })).toBeGreaterThan(0);
    expect(valueOf(after, 'deposit_bridge_reconciliation_runs_total')).toBeGreaterThanOrEqual(2);
    expect(valueOf(after, 'deposit_bridge_job_runs_total', { job: 'reconcile', outcome: 'ok' })).toBe(valueOf(after, 'deposit_bridge_reconciliation_runs_total'));
  });
});
