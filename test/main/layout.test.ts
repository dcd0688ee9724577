// The house: host files stay small (handler maps per domain, no assembling of work), and the CLI and host
// reach the engine only through the use cases (also enforced by the lint zones).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/env.ts';

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('no file in src/main/host is over 400 lines', () => {
  for (const f of files(path.join(REPO, 'src', 'main', 'host'))) {
    const lines = fs.readFileSync(f, 'utf8').split('\n').length;
    assert.ok(lines <= 400, `${path.relative(REPO, f)}: ${lines} lines`);
  }
});

test('the host and the CLI import no engine module', () => {
  for (const dir of [path.join('src', 'main', 'host'), path.join('src', 'cli')])
    for (const f of files(path.join(REPO, dir))) {
      const imports = [...fs.readFileSync(f, 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1] as string);
      const engine = imports.filter((i) =>
        path.resolve(path.dirname(f), i).includes(`${path.sep}main${path.sep}engine${path.sep}`),
      );
      assert.deepEqual(engine, [], path.relative(REPO, f));
    }
});
