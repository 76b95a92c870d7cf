/**
 * Whether every string in a JSON value can be stored as PostgreSQL text or jsonb: no U+0000
 * and no unpaired surrogate (both are valid in JSON and in JavaScript strings, and both make
 * PostgreSQL refuse the row). Input failing this is refused at the edge, never half-stored.
 */
export function isStorable(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\u0000');
  if (Array.isArray(value)) return value.every(isStorable);
  if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) if (!isStorable(key) || !isStorable((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/** `text` made storable: unpaired surrogates and NULs become U+FFFD. For what is only shown, never matched. */
export function storableText(text: string): string {
  return text.toWellFormed().replaceAll('\u0000', '\uFFFD');
}
