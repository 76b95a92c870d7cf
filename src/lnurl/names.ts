/**
 * Lightning address names (LUD-16 `<name>@<host>`): the characters LUD-16 allows (a-z 0-9 - _ .),
 * beginning and ending with a letter or digit, at most 64 long, and not a name people would
 * take for the service itself.
 */
import { fail, ok, type Result } from '../protocol/result.ts';

export const MAX_NAME_LENGTH = 64;

const NAME = /^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/;

/** Names a user may not take: they would pass for the operator of the bridge, or for a role. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'abuse',
  'admin',
  'administrator',
  'api',
  'billing',
  'bridge',
  'callback',
  'deposit-bridge',
  'help',
  'hostmaster',
  'info',
  'lnurl',
  'lnurlp',
  'mail',
  'mailer-daemon',
  'no-reply',
  'noreply',
  'nostr',
  'operator',
  'postmaster',
  'root',
  'security',
  'support',
  'system',
  'vault',
  'verify',
  'wallet',
  'webmaster',
  'well-known',
  'www',
  'zap',
  'zaps',
]);

/** Checks a name a user asks for; the error says what is wrong with it. */
export function checkAddressName(name: string): Result<string> {
  if (name.length === 0) return fail('BAD_REQUEST', 'name is empty');
  if (name.length > MAX_NAME_LENGTH) return fail('BAD_REQUEST', `name is longer than ${MAX_NAME_LENGTH} characters`);
  if (name !== name.toLowerCase()) return fail('BAD_REQUEST', 'name must be lowercase (LUD-16 allows a-z 0-9 - _ .)');
  if (!NAME.test(name)) return fail('BAD_REQUEST', 'name may hold only a-z 0-9 - _ . and must begin and end with a letter or digit');
  if (name.includes('..')) return fail('BAD_REQUEST', 'name must not hold two dots in a row');
  if (RESERVED_NAMES.has(name)) return fail('BAD_REQUEST', `name "${name}" is reserved`);
  return ok(name);
}
