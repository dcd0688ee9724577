// The model processes' environment: glibc's memory tunables added without overriding the user's, and, on
// glibc, real ONNX Runtime runs with 16 MiB outputs that stop faulting their pages in on every run.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { GraphBuilder } from '../../src/main/engine/onnx/builder.ts';
import { encodeModel } from '../../src/main/engine/onnx/model.ts';
import { MALLOC_TUNABLES, withMallocTunables } from '../../src/main/engine/onnx/process-env.ts';
import { REPO, tmpDir } from '../helpers/env.ts';

test('the tunables are added on Linux, after and never over the ones already set', () => {
  const env = withMallocTunables({ PATH: '/bin' }, 'linux');
  const tunables = (env.GLIBC_TUNABLES ?? '').split(':');
  assert.deepEqual(
    tunables,
    Object.entries(MALLOC_TUNABLES).map(([k, v]) => `${k}=${v}`),
  );
  assert.equal(env.PATH, '/bin');

  const mine = withMallocTunables({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0:glibc.cpu.x86_ibt=on' }, 'linux');
  const parts = (mine.GLIBC_TUNABLES ?? '').split(':');
  assert.deepEqual(parts.slice(0, 2), ['glibc.malloc.hugetlb=0', 'glibc.cpu.x86_ibt=on']);
  assert.equal(parts.filter((p) => p.startsWith('glibc.malloc.hugetlb=')).length, 1);
  assert.ok(parts.includes(`glibc.malloc.mmap_threshold=${32 << 20}`));

  const all = withMallocTunables({ PATH: '/bin' }, 'linux');
  assert.equal(withMallocTunables(all, 'linux'), all, 'nothing to add: the same object');
  for (const platform of ['win32', 'darwin'] as const) {
    const e = { PATH: 'x' };
    assert.equal(withMallocTunables(e, platform), e);
  }
  const off = { FEWSHOT_MALLOC: 'default' };
  assert.equal(withMallocTunables(off, 'linux'), off);
});

const glibc =
  process.platform === 'linux' &&
  Boolean(
    (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime,
  );

test(
  'with the tunables, runs whose outputs are 16 MiB fault a fraction of the pages in',
  { skip: glibc ? false : 'needs Linux with glibc (the tunables are glibc’s)' },
  () => {
    const dir = tmpDir();
    const n = 4 << 20; // 16 MiB of float32
    const b = new GraphBuilder('t');
    b.input('x', [n]);
    b.output(b.op('Add', ['x', b.scalar(1)]), 'y', [n]);
    const file = path.join(dir, 'add.onnx');
    fs.writeFileSync(file, encodeModel(b.model('add')));
    // A child process per setting (glibc reads the tunables when a process starts): 30 runs after a warm-up.
    const script = `
      const ort = require('onnxruntime-node');
      (async () => {
        const s = await ort.InferenceSession.create(${JSON.stringify(file)}, { intraOpNumThreads: 1 });
        const x = new ort.Tensor('float32', new Float32Array(${n}), [${n}]);
        let sum = 0;
        for (let i = 0; i < 3; i++) sum += (await s.run({ x })).y.data[0];
        const before = process.resourceUsage().minorPageFault;
        for (let i = 0; i < 30; i++) sum += (await s.run({ x })).y.data[i];
        console.log(JSON.stringify({ faults: process.resourceUsage().minorPageFault - before, sum }));
      })();`;
    const faults = (env: NodeJS.ProcessEnv): number => {
      const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim()) as { faults: number; sum: number };
      assert.equal(out.sum, 33, 'every output is x + 1');
      return out.faults;
    };
    // glibc's default threshold (128 KiB) held fixed: left adaptive, it sometimes rises past 16 MiB on its
    // own and sometimes not, which would make the comparison a coin toss.
    const plain = {
      ...process.env,
      GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072',
      FEWSHOT_MALLOC: 'default',
    };
    const without = faults(plain);
    const withTunables = faults(withMallocTunables({ ...process.env, GLIBC_TUNABLES: '' }, 'linux'));
    // Without: every run faults its output's 4,096 pages in again (30 runs: ~120 k). With: a few dozen.
    assert.ok(without > 30 * 2000, `without the tunables: ${without} faults`);
    assert.ok(withTunables < without / 10, `with the tunables: ${withTunables} faults, without: ${without}`);
  },
);
