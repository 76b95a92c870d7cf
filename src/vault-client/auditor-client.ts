/**
 * The auditor API (docs/vault-api.md, "Auditor API"): fetches an auditor's reports on one
 * operator and keeps only those that verify and are signed by the auditor's known key.
 */
import { auditorReportsResponseSchema, verifyAuditorReport, type AuditorReport } from '../protocol/auditor-report.ts';
import { VaultError } from './vault-client.ts';

export interface AuditorClientOptions {
  /** The auditor's base URL. */
  url: string;
  /** The auditor's x-only Nostr key: reports signed by any other key are rejected. */
  pubkey: string;
  /** Per-call timeout in milliseconds (default 10 000). */
  timeoutMs?: number;
}

export interface AuditorReports {
  /** Reports that verified, oldest window first. */
  reports: AuditorReport[];
  /** Reports that did not verify, with why, so the caller can count them against the auditor. */
  rejected: { id: string; reason: string }[];
}

export class AuditorClient {
  readonly url: string;
  readonly pubkey: string;
  readonly #timeoutMs: number;

  constructor(options: AuditorClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.pubkey = options.pubkey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * Reports on the operator (33-byte node key, hex) since `sinceSec` (unix seconds). Throws
   * VaultError UNAVAILABLE when the auditor cannot be reached, INTERNAL on a malformed answer.
   */
  async reports(operatorNodePubkey: string, sinceSec: number): Promise<AuditorReports> {
    const path = `/v0/reports/${encodeURIComponent(operatorNodePubkey)}?since=${Math.max(0, Math.floor(sinceSec))}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url + path, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.#timeoutMs) });
      text = await response.text();
    } catch (error) {
      throw new VaultError('UNAVAILABLE', `auditor ${this.url} GET ${path}: unreachable`, { cause: error });
    }
    if (!response.ok) throw new VaultError(response.status === 503 ? 'UNAVAILABLE' : 'INTERNAL', `auditor ${this.url} GET ${path}: HTTP ${response.status}`, { status: response.status });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new VaultError('INTERNAL', `auditor ${this.url} GET ${path}: expected a JSON list of reports`, { status: response.status });
    }
    const parsed = auditorReportsResponseSchema.safeParse(json);
    if (!parsed.success) throw new VaultError('INTERNAL', `auditor ${this.url} GET ${path}: expected {"reports": [signed events]}`, { status: response.status });

    const result: AuditorReports = { reports: [], rejected: [] };
    for (const event of parsed.data.reports) {
      if (event.pubkey !== this.pubkey) {
        result.rejected.push({ id: event.id, reason: 'report is signed by another key than the auditor' });
        continue;
      }
      const verified = verifyAuditorReport(event, operatorNodePubkey);
      if (verified.ok) result.reports.push(verified.value);
      else result.rejected.push({ id: event.id, reason: verified.error.message });
    }
    result.reports.sort((a, b) => a.window_start - b.window_start);
    return result;
  }
}
