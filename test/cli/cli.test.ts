import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { encodeModel } from '../../src/main/engine/onnx/model.ts';
import { buildResNet18 } from '../../src/main/engine/backbones/resnet18.ts';
import { BCCD, GENERATED_MODELS, REPO, SHARED_MODELS, needsShared, tmpDir } from '../helpers/env.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
let userModels = '';

function fewshot(...args: string[]): { code: number; stdout: string; stderr: string; json: () => unknown } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_USER_MODELS: userModels },
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    json: () => JSON.parse(r.stdout) as unknown,
  };
}

before(() => {
  userModels = tmpDir('fsl-cli-models-');
  ensureRandomResNet18(GENERATED_MODELS);
});

test('project create, import --json, features twice (second from cache)', { skip: needsShared }, () => {
  const dir = tmpDir('fsl-cli-');
  const file = path.join(dir, 'lab.fsl');
  assert.equal(fewshot('project', 'create', file).code, 0);
  const sub = path.join(dir, 'data');
  for (const cls of ['WBC', 'RBC']) {
    fs.mkdirSync(path.join(sub, cls), { recursive: true });
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 6))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(sub, cls, f));
  }
  fs.writeFileSync(path.join(sub, 'RBC', 'broken.jpg'), 'not a jpeg');
  const imp = fewshot('import', file, sub, '--json');
  assert.equal(imp.code, 0, imp.stderr);
  const summary = imp.json() as {
    added: number;
    perClass: Record<string, number>;
    rejected: { path: string; code: string }[];
  };
  assert.deepEqual(summary.perClass, { RBC: 6, WBC: 6 });
  assert.deepEqual(
    summary.rejected.map((r) => [r.path, r.code]),
    [['RBC/broken.jpg', 'NOT_AN_IMAGE']],
  );

  const f1 = fewshot('features', file, '--backbone', 'squeezenet1_1-imagenet', '--json');
  assert.equal(f1.code, 0, f1.stderr);
  assert.deepEqual((f1.json() as { computed: number; fromCache: number }).computed, 12);
  const f2 = fewshot('features', file, '--backbone', 'squeezenet1_1-imagenet', '--json');
  const r2 = f2.json() as { computed: number; fromCache: number; imagesPerSecond: number };
  assert.deepEqual([r2.computed, r2.fromCache], [0, 12]);

  // The device is a choice for features and batch classification too; a bad one is a typed error.
  const bad = fewshot('features', file, '--backbone', 'squeezenet1_1-imagenet', '--device', 'tpu');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--device is auto, cpu, gpu/);
  const onCpu = fewshot(
    'features',
    file,
    '--backbone',
    'squeezenet1_1-imagenet',
    '--device',
    'cpu',
    '--json',
  );
  assert.equal(onCpu.code, 0, onCpu.stderr);
  const trained = fewshot(
    'train',
    file,
    '--backbone',
    'squeezenet1_1-imagenet',
    '--strategy',
    'prototype',
    '--json',
  );
  assert.equal(trained.code, 0, trained.stderr);
  const modelId = (trained.json() as { modelId: string }).modelId;
  const out = path.join(dir, 'out.csv');
  const cls = fewshot(
    'classify',
    file,
    '--model',
    modelId,
    path.join(sub, 'WBC'),
    '--out',
    out,
    '--device',
    'cpu',
    '--json',
  );
  assert.equal(cls.code, 0, cls.stderr);
  assert.equal(
    (cls.json() as { ok: number; uncertain: number }).ok + (cls.json() as { uncertain: number }).uncertain,
    6,
  );
});

test('models add validates an ONNX backbone, registers it, and models list shows it installed', () => {
  const dir = tmpDir('fsl-cli-add-');
  const file = path.join(dir, 'resnet18.onnx');
  fs.writeFileSync(file, encodeModel(buildResNet18({ seed: 11 })));
  const add = fewshot('models', 'add', file, '--id', 'resnet18-imagenet', '--json');
  assert.equal(add.code, 0, add.stderr);
  const entry = add.json() as { id: string; architecture: string; output: { dim: number }; sha256: string };
  assert.deepEqual([entry.id, entry.architecture, entry.output.dim], ['resnet18-imagenet', 'resnet18', 512]);
  assert.ok(fs.existsSync(path.join(userModels, 'resnet18-imagenet', 'model.onnx')));
  const list = fewshot('models', 'list', '--json');
  const models = (list.json() as { models: { id: string; present: boolean; source: string }[] }).models;
  const r18 = models.find((m) => m.id === 'resnet18-imagenet');
  assert.deepEqual(
    [r18?.present, r18?.source],
    [true, 'user'],
    'the user copy replaces the missing built-in entry',
  );

  fs.writeFileSync(path.join(dir, 'junk.onnx'), 'not a model');
  const bad = fewshot('models', 'add', path.join(dir, 'junk.onnx'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim(), /^fewshot: MODEL_INVALID: /);
});

test('errors: one line on stderr and a non-zero exit', () => {
  const missing = fewshot('import', path.join(tmpDir(), 'nope.fsl'), REPO);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^fewshot: NOT_FOUND: No project file/m);
  const unknown = fewshot('frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
  const noBackbone = fewshot('features', path.join(tmpDir(), 'x.fsl'));
  assert.equal(noBackbone.code, 2);
  assert.match(noBackbone.stderr, /--backbone is required/);
});

test('project settings shows and changes the 16-bit policy; a bad value is a typed error', () => {
  const file = path.join(tmpDir('fsl-cli-settings-'), 'lab.fsl');
  assert.equal(fewshot('project', 'create', file).code, 0);
  assert.deepEqual(
    (fewshot('project', 'settings', file, '--json').json() as { highBitDepth: string }).highBitDepth,
    'full',
  );
  const set = fewshot('project', 'settings', file, '--high-bit-depth', 'percentile', '--json');
  assert.equal((set.json() as { highBitDepth: string }).highBitDepth, 'percentile');
  assert.match(fewshot('project', 'settings', file).stdout, /16-bit images: percentile/);
  const bad = fewshot('project', 'settings', file, '--high-bit-depth', 'log');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /INVALID_INPUT/);
});

test('import --frames each turns a multi-page TIFF into one image per page; a bad value is refused', async () => {
  const dir = tmpDir('fsl-cli-frames-');
  const file = path.join(dir, 'lab.fsl');
  fs.mkdirSync(path.join(dir, 'data', 'slides'), { recursive: true });
  const pages = Buffer.concat([Buffer.alloc(10 * 10 * 3, 40), Buffer.alloc(10 * 10 * 3, 200)]);
  fs.writeFileSync(
    path.join(dir, 'data', 'slides', 'two.tif'),
    await sharp(pages, { raw: { width: 10, height: 20, channels: 3, pageHeight: 10 } as never })
      .tiff()
      .toBuffer(),
  );
  assert.equal(fewshot('project', 'create', file).code, 0);
  assert.notEqual(fewshot('import', file, path.join(dir, 'data'), '--frames', 'all').code, 0);
  const r = fewshot('import', file, path.join(dir, 'data'), '--frames', 'each', '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    [(r.json() as { added: number }).added, (r.json() as { multiPage: number }).multiPage],
    [2, 1],
  );
});

test('importing 12-bit data in 16-bit files points to the percentile setting', async () => {
  const dir = tmpDir('fsl-cli-dim-');
  const file = path.join(dir, 'lab.fsl');
  fs.mkdirSync(path.join(dir, 'data', 'cells'), { recursive: true });
  const v = Uint16Array.from({ length: 64 }, (_, i) => i * 60);
  fs.writeFileSync(
    path.join(dir, 'data', 'cells', 'camera.png'),
    await sharp(v, { raw: { width: 8, height: 8, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer(),
  );
  assert.equal(fewshot('project', 'create', file).code, 0);
  const r = fewshot('import', file, path.join(dir, 'data'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 16-bit images hold 10- to 14-bit data .* --high-bit-depth percentile/);
});
