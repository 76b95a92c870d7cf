import { getPublicKey } from 'nostr-tools/pure';
import { z } from 'zod';
import { httpAuthHeader } from '../protocol/nip98.ts';
import { signDepositOpen } from '../protocol/user-statements.ts';
import { openSettings, sealSettings, settingsSchema, type BackupFile } from './settings-backup.ts';

/** An answer of the bridge's API: its status and JSON body (null when not JSON). */
interface Answer {
  status: number;
  json: unknown;
}

/** A call to the bridge's API signed (NIP-98) with the user's key. Throws only when the bridge cannot be reached. */
async function signedCall(url: string, method: 'GET' | 'POST' | 'PUT', userKey: Uint8Array, body?: unknown): Promise<Answer> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), authorization: httpAuthHeader(userKey, url, method, text) },
      ...(text !== undefined ? { body: text } : {}),
    });
  } catch (error) {
    throw new Error(`cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const raw = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(raw);
  } catch {
    // reported by the caller through the status
  }
  return { status: response.status, json };
}

const errorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

function why(answer: Answer): string {
  const parsed = errorBody.safeParse(answer.json);
  return parsed.success ? `${parsed.data.error.code}: ${parsed.data.error.message}` : `HTTP ${answer.status}`;
}

/** `deposit-bridge export`: the user's settings at the bridge, sealed to the user's key. */
export async function exportBackup(baseUrl: string, userKey: Uint8Array, nowSec: number): Promise<BackupFile> {
  const answer = await signedCall(`${baseUrl}/api/account/settings`, 'GET', userKey);
  if (answer.status !== 200) throw new Error(`the bridge refused the export: ${why(answer)}`);
  const settings = settingsSchema.safeParse(answer.json);
  if (!settings.success) throw new Error(`the bridge answered with unexpected settings: ${settings.error.issues[0]?.path.join('.') ?? ''}`);
  return sealSettings(settings.data, userKey, nowSec);
}

/** What importing one part of a backup did. */
export interface ImportStep {
  what: string;
  ok: boolean;
  detail: string;
}

/**
 * `deposit-bridge import`: opens a backup with the user's key and registers it again at a bridge
 * (typically after its database was lost): each connection's grant (with a fresh deposit-open
 * statement, so the user's deposits are opened again, idempotently, at every operator), the
 * allocation policy, the lightning address, and the lock. Every statement is the one the user
 * signed, so the bridge and the vaults verify it as they did the first time. Goes on past a
 * refused part (a grant since expired, an address taken) and reports each.
 */
export async function importBackup(baseUrl: string, userKey: Uint8Array, fileText: string): Promise<ImportStep[]> {
  const settings = openSettings(fileText, userKey);
  const steps: ImportStep[] = [];
  const depositOpen = signDepositOpen(userKey);
  for (const grant of settings.grants) {
    const connection = grant.tags.find((t) => t[0] === 'p')?.[1] ?? '?';
    const answer = await signedCall(`${baseUrl}/api/connections`, 'POST', userKey, { grant, deposit_open: depositOpen });
    const ok = answer.status === 200 || answer.status === 201;
    steps.push({ what: `connection ${connection.slice(0, 16)}…`, ok, detail: ok ? 'registered' : why(answer) });
  }
  if (settings.policy) {
    const answer = await signedCall(`${baseUrl}/api/policy`, 'PUT', userKey, settings.policy);
    steps.push({ what: 'allocation policy', ok: answer.status === 200, detail: answer.status === 200 ? 'set' : why(answer) });
  }
  if (settings.lightning_address) {
    const answer = await signedCall(`${baseUrl}/api/address`, 'PUT', userKey, { name: settings.lightning_address });
    steps.push({ what: `lightning address ${settings.lightning_address}`, ok: answer.status === 200, detail: answer.status === 200 ? 'set' : why(answer) });
  }
  if (settings.lock) {
    const answer = await signedCall(`${baseUrl}/api/lock`, 'POST', userKey, { lock: settings.lock });
    steps.push({ what: 'emergency lock statement', ok: answer.status === 200, detail: answer.status === 200 ? 'applied' : why(answer) });
  }
  if (steps.length === 0) steps.push({ what: `backup of ${getPublicKey(userKey).slice(0, 16)}…`, ok: true, detail: 'held no settings' });
  return steps;
}
