import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildVectors, serializeVector, VECTORS_DIR } from '../vectors/generate.ts';

describe('test/vectors', () => {
  const built = buildVectors();

  it.each(Object.keys(built))('%s is exactly what generate.ts produces (reproducible byte for byte)', (file) => {
    expect(readFileSync(join(VECTORS_DIR, file), 'utf8')).toBe(serializeVector(built[file]));
  });

  it('holds no vector file that generate.ts does not produce', () => {
    const onDisk = readdirSync(VECTORS_DIR).filter((f) => f.endsWith('.json'));
    expect(onDisk.sort()).toEqual(Object.keys(built).sort());
  });
});
