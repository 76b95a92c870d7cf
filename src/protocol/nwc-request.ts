import { z } from 'zod';
import { nip47Msat } from './amounts.ts';

/** The decrypted body of a NIP-47 request: `{ method, params }`. */
export const nwcRequestBodySchema = z.object({
  method: z.string().min(1).max(64),
  params: z.record(z.string(), z.unknown()).default({}),
});

/** NIP-47 `metadata`: at most 4096 characters once serialized, otherwise dropped (NIP-47, "Metadata"). */
export const nip47Metadata = z
  .record(z.string(), z.unknown())
  .optional()
  .transform((m) => (m !== undefined && JSON.stringify(m).length <= 4096 ? m : undefined));

/** pay_invoice params. Shared with vaults, which parse the plaintext an app signed. */
export const payInvoiceParamsSchema = z.object({
  invoice: z.string().min(1).max(8192),
  amount: nip47Msat.optional(),
  metadata: nip47Metadata,
});
