/** The devnet auditor's signed reports, read through AuditorClient. */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { finalizeEvent, generateSecretKey } from 'nostr-tools/pure';
import type { Devnet } from '../../src/devnet/devnet.ts';
import { signAuditorReport, type AuditorReport } from '../../src/protocol/auditor-report.ts';
import { AuditorClient } from '../../src/vault-client/auditor-client.ts';
import { HttpVaultClient } from '../../src/vault-client/http-vault-client.ts';
import { newParty } from '../helpers/authorization.ts';
import { eventually, fundedDeposit, startTestDevnet } from '../helpers/devnet.ts';

describe('devnet auditor', () => {
  let devnet: Devnet;
  let auditor: AuditorClient;

  /** Waits for a report on `operator` whose window started at or after `sinceMs` and returns it. */
  const nextReport = async (operator: string, sinceMs: number): Promise<AuditorReport> => {
    let found: AuditorReport | undefined;
    await eventually(async () => {
      const { reports } = await auditor.reports(operator, 0);
      found = reports.find((r) => r.window_start * 1000 >= sinceMs - 1000 && r.window_end * 1000 >= sinceMs + 300);
      return found !== undefined;
    }, 'an auditor report');
    if (!found) throw new Error('no report');
    return found;
  };

  beforeAll(async () => {
    devnet = await startTestDevnet({ auditIntervalMs: 30, auditWindowMs: 300 });
    const first = devnet.auditors[0];
    if (!first) throw new Error('no auditor');
    auditor = new AuditorClient({ url: first.url, pubkey: first.pubkey });
  });
  afterAll(async () => {
    await devnet.stop();
  });

  it('signs a report per operator: up, correct, fully reserved', async () => {
    for (const op of devnet.operators) {
      const report = await nextReport(op.nodePubkey, 0);
      expect(report.auditor).toBe(auditor.pubkey);
      expect(report).toMatchObject({ operator: op.nodePubkey, uptime_ppm: 1_000_000, correctness_ppm: 1_000_000, reserve_ratio_ppm: 1_000_000, integrity_incidents: 0 });
      expect(report.samples).toBeGreaterThan(0);
      expect(report.latency_p95_ms).toBeGreaterThanOrEqual(report.latency_p50_ms);
    }
  });

  it('reports downtime and a reserve shortfall when the faults say so', async () => {
    const [, b, c] = devnet.operators;
    if (!b || !c) throw new Error('operators missing');
    const party = newParty();
    await fundedDeposit(devnet, new HttpVaultClient({ url: c.url, secretKey: generateSecretKey() }), party.user, 10_000_000n);
    const since = Date.now();
    b.faults.down = true;
    c.faults.reservePpm = 600_000;
    try {
      const down = await nextReport(b.nodePubkey, since);
      expect(down.uptime_ppm).toBeLessThan(1_000_000);
      // A window the operator was down throughout has no reserve reading: unknown, not a shortfall.
      let silent: Awaited<ReturnType<typeof nextReport>> | undefined;
      await eventually(async () => {
        silent = (await auditor.reports(b.nodePubkey, 0)).reports.find((r) => r.window_start * 1000 >= since && r.uptime_ppm === 0);
        return silent !== undefined;
      }, 'a window with the operator down throughout');
      expect(silent!.reserve_ratio_ppm).toBeNull();
      const short = await nextReport(c.nodePubkey, since);
      expect(short.reserve_ratio_ppm).toBe(600_000);
    } finally {
      b.faults.down = false;
      c.faults.reservePpm = 1_000_000;
    }
  });

  it('answers bad report queries with the error body', async () => {
    const base = devnet.auditors[0]?.url ?? '';
    const response = await fetch(`${base}/v0/reports/not-a-key`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    const since = await fetch(`${base}/v0/reports/${devnet.operators[0]?.nodePubkey}?since=yesterday`);
    expect(since.status).toBe(400);
  });

  it('only returns reports since the given time', async () => {
    const op = devnet.operators[0]?.nodePubkey ?? '';
    const all = await auditor.reports(op, 0);
    const last = all.reports.at(-1);
    if (!last) throw new Error('no reports');
    const recent = await auditor.reports(op, last.window_end);
    expect(recent.reports.length).toBeGreaterThanOrEqual(1);
    expect(recent.reports.every((r) => r.window_end >= last.window_end)).toBe(true);
    expect((await auditor.reports(op, last.window_end + 3600)).reports).toEqual([]);
  });

  describe('AuditorClient against a lying auditor', () => {
    let server: Server;
    let url = '';
    const realKey = generateSecretKey();
    const operator = '02' + 'ab'.repeat(32);
    let served: unknown[] = [];

    beforeAll(async () => {
      server = createServer((_request, response) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ reports: served }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no address');
      url = `http://127.0.0.1:${address.port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it('keeps valid reports and rejects tampered, foreign-signed and off-topic ones', async () => {
      const content = {
        operator,
        window_start: 1_700_000_000,
        window_end: 1_700_000_600,
        samples: 60,
        uptime_ppm: 1_000_000,
        correctness_ppm: 1_000_000,
        latency_p50_ms: 3,
        latency_p95_ms: 9,
        reserve_ratio_ppm: 1_000_000,
        integrity_incidents: 0,
      };
      const valid = signAuditorReport(content, realKey);
      const tampered = { ...signAuditorReport({ ...content, window_start: 1_700_000_600, window_end: 1_700_001_200 }, realKey) };
      tampered.content = tampered.content.replace('"uptime_ppm":1000000', '"uptime_ppm":999999');
      const foreign = signAuditorReport({ ...content, window_start: 1_700_001_200 }, generateSecretKey());
      const otherOperator = signAuditorReport({ ...content, operator: '03' + 'cd'.repeat(32) }, realKey);
      const notJson = finalizeEvent({ kind: 31350, created_at: 1_700_000_600, tags: [], content: 'up!' }, realKey);
      served = [tampered, valid, foreign, otherOperator, notJson];

      const client = new AuditorClient({ url, pubkey: finalizeEvent({ kind: 1, created_at: 0, tags: [], content: '' }, realKey).pubkey });
      const result = await client.reports(operator, 0);
      expect(result.reports.map((r) => r.event.id)).toEqual([valid.id]);
      expect(result.rejected.map((r) => r.id).sort()).toEqual([tampered.id, foreign.id, otherOperator.id, notJson.id].sort());
      expect(result.rejected.find((r) => r.id === foreign.id)?.reason).toMatch(/another key/);
    });

    it('throws INTERNAL on a malformed answer and UNAVAILABLE when unreachable', async () => {
      served = [{ kind: 31350 }];
      await expect(new AuditorClient({ url, pubkey: 'ab'.repeat(32) }).reports(operator, 0)).rejects.toMatchObject({ code: 'INTERNAL' });
      await expect(new AuditorClient({ url: 'http://127.0.0.1:1', pubkey: 'ab'.repeat(32) }).reports(operator, 0)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    });
  });
});
