/**
 * The vaults file: which vault operators and auditors the bridge uses. The devnet writes one
 * (`<dataDir>/devnet/vaults.json`); in production the operator of the bridge writes it.
 *
 * { "operators": [{ "name": "vault-a", "url": "http://127.0.0.1:7451", "node_pubkey": "02…" }],
 *   "auditors": [{ "url": "http://127.0.0.1:7454", "pubkey": "<x-only hex>" }] }
 *
 * An operator entry may say `"protocol": "v1"`: a v1 Bitcoin Deposits operator
 * (docs/vault-api-v1.md), spoken to by `V1DepositServiceClient`; absent means `"v0"`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { compressedPubkeyHex, hex32 } from '../protocol/hex.ts';
import { fail, ok, type Result } from '../protocol/result.ts';

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' });

export const vaultsFileSchema = z.strictObject({
  operators: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(64),
        url: httpUrl,
        /** A pin: the bridge refuses the operator if /v0/info names another node key. */
        node_pubkey: compressedPubkeyHex.optional(),
        /**
         * Which Vault API the operator speaks; absent means v0 (`operatorProtocol`). Optional
         * rather than defaulted so that files and values written without it stay equal to their parse.
         */
        protocol: z.enum(['v0', 'v1']).optional(),
      }),
    )
    .refine((ops) => new Set(ops.map((o) => o.name)).size === ops.length, 'operator names must be unique')
    .refine((ops) => new Set(ops.map((o) => o.url)).size === ops.length, 'operator URLs must be unique'),
  auditors: z.array(z.strictObject({ url: httpUrl, pubkey: hex32 })).default([]),
});
export type VaultsFile = z.output<typeof vaultsFileSchema>;

/** The Vault API an operator entry speaks: its `protocol`, v0 when absent. */
export function operatorProtocol(entry: VaultsFile['operators'][number]): 'v0' | 'v1' {
  return entry.protocol ?? 'v0';
}

/** Parses a vaults file's text; the error names the file and the first bad field. */
export function parseVaultsFile(text: string, source = 'vaults file'): Result<VaultsFile> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return fail('BAD_REQUEST', `${source} is not valid JSON`);
  }
  const parsed = vaultsFileSchema.safeParse(json);
  if (parsed.success) return ok(parsed.data);
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  return fail('BAD_REQUEST', `${source} is invalid${where}: ${issue?.message ?? 'unknown problem'}`);
}

/** Reads and checks a vaults file at start-up; throws an Error naming the file and the problem. */
export function readVaultsFile(path: string): VaultsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read vaults file ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const parsed = parseVaultsFile(text, `vaults file ${path}`);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.value;
}
