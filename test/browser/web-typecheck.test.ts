import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('the browser code (web/src)', () => {
  it('type-checks against the DOM types (web/tsconfig.json, outside the root type-check)', async () => {
    const run = promisify(execFile)(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'web/tsconfig.json'], { cwd: ROOT, timeout: 120_000 });
    await expect(run).resolves.toMatchObject({ stdout: '' });
  });
});
