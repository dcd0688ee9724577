// PyTorch checkpoints read without Python, checked against real PyTorch: torch writes a seeded
// torchvision ResNet18 with torch.save and computes its features; after `fewshot models add x.pth` the
// app's features equal torch's on identical input tensors, and stay close through each side's own image
// decoding and resizing (PIL vs libvips). Every refusal is a typed error that installs nothing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { IMAGENET_RGB } from '../../src/shared/backbones.ts';
import { addOnnxBackbone } from '../../src/main/engine/backbones/install.ts';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { readManifest } from '../../src/main/engine/backbones/registry.ts';
import { restrictedUnpickle } from '../../src/main/engine/backbones/pytorch-checkpoint.ts';
import { hubHashPrefix } from '../../src/main/engine/backbones/pth-import.ts';
import { evalCrop, normalizeInto } from '../../src/main/engine/image/preprocess.ts';
import { BCCD, REPO, needsShared, tmpDir } from '../helpers/env.ts';
import { readNpy, writeNpy } from '../helpers/npy.ts';
import { needsTorch, runPython } from '../helpers/torch.ts';

const skip = needsShared || needsTorch;
const BIN = path.join(REPO, 'bin', 'fewshot.mjs');
const SPEC = { ...IMAGENET_RGB, name: 'input' };
let ref = '';
let images: string[] = [];
let appInputs: Float32Array;

function fewshot(userModels: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, FEWSHOT_MODELS: '', FEWSHOT_USER_MODELS: userModels },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function rowCosines(a: Float32Array, b: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / dim; r++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = r * dim; i < (r + 1) * dim; i++) {
      ab += (a[i] as number) * (b[i] as number);
      aa += (a[i] as number) ** 2;
      bb += (b[i] as number) ** 2;
    }
    out.push(ab / Math.sqrt(aa * bb));
  }
  return out;
}

async function features(
  modelsDir: string,
  id: string,
  input: Float32Array,
  n: number,
): Promise<Float32Array> {
  const entry = readManifest(modelsDir, 'user').find((e) => e.id === id);
  assert.ok(entry, `${id} is in the manifest`);
  const b = await Backbone.load(entry, { threads: 2, device: 'cpu' });
  try {
    return new Float32Array(await b.embed(input, n));
  } finally {
    await b.release();
  }
}

function nothingInstalled(dir: string): void {
  const manifest = path.join(dir, 'manifest.json');
  const models = fs.existsSync(manifest)
    ? (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { models: unknown[] }).models
    : [];
  assert.deepEqual(models, [], 'no manifest entry');
  const left = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f !== 'manifest.json') : [];
  assert.deepEqual(left, [], 'no model folder');
}

before(async () => {
  if (skip) return;
  ref = tmpDir('fsl-torch-ref-');
  images = ['WBC', 'RBC', 'Platelets'].flatMap((c) =>
    fs
      .readdirSync(path.join(BCCD, c))
      .sort()
      .slice(0, 3)
      .map((f) => path.join(BCCD, c, f)),
  );
  const plane = 3 * 224 * 224;
  appInputs = new Float32Array(images.length * plane);
  for (const [i, f] of images.entries())
    normalizeInto(await evalCrop(fs.readFileSync(f), SPEC), SPEC, appInputs, i);
  writeNpy(path.join(ref, 'app_inputs.npy'), [images.length, 3, 224, 224], appInputs);
  runPython(path.join(REPO, 'test', 'helpers', 'torchvision-reference.py'), [
    ref,
    path.join(ref, 'app_inputs.npy'),
    ...images,
  ]);
});

test('models add reads torch.save output: features equal PyTorch on the same tensors', { skip }, async () => {
  const models = tmpDir('fsl-pth-models-');
  const add = fewshot(models, 'models', 'add', path.join(ref, 'resnet18-seeded.pth'), '--json');
  assert.equal(add.code, 0, add.stderr);
  const entry = JSON.parse(add.stdout) as {
    id: string;
    architecture: string;
    output: { dim: number };
    origin: { file: string; sha256: string };
  };
  assert.deepEqual([entry.id, entry.architecture, entry.output.dim], ['resnet18-seeded', 'resnet18', 512]);
  const sha = spawnSync('sha256sum', [path.join(ref, 'resnet18-seeded.pth')], { encoding: 'utf8' });
  assert.equal(entry.origin.sha256, sha.stdout.split(' ')[0], 'the checkpoint sha256 is recorded');

  const torchFeats = readNpy(path.join(ref, 'feats_app_inputs.npy'));
  assert.deepEqual(torchFeats.shape, [images.length, 512]);
  const ours = await features(models, 'resnet18-seeded', appInputs, images.length);
  const diff = maxAbsDiff(ours, torchFeats.data);
  const scale = Math.max(...torchFeats.data.map(Math.abs));
  console.log(
    `pth import: max |app − torch| = ${diff.toExponential(2)} (features up to ${scale.toFixed(3)})`,
  );
  assert.ok(diff <= 1e-4, `features differ by ${diff}`);
});

test(
  'through each side’s own decoding and resizing (libvips vs PIL), features stay close',
  { skip },
  async () => {
    const models = tmpDir('fsl-pth-e2e-');
    await addOnnxBackbone(path.join(ref, 'resnet18-seeded.pth'), { dir: models });
    const pil = readNpy(path.join(ref, 'pil_inputs.npy'));
    const pixel = maxAbsDiff(appInputs, pil.data);
    let sum = 0;
    for (let i = 0; i < appInputs.length; i++)
      sum += Math.abs((appInputs[i] as number) - (pil.data[i] as number));
    const ours = await features(models, 'resnet18-seeded', appInputs, images.length);
    const torchPil = readNpy(path.join(ref, 'feats_pil.npy'));
    const cos = rowCosines(ours, torchPil.data, 512);
    const rel =
      Math.sqrt(ours.reduce((s, v, i) => s + (v - (torchPil.data[i] as number)) ** 2, 0)) /
      Math.sqrt(torchPil.data.reduce((s, v) => s + v * v, 0));
    console.log(
      `decode+resize: input tensors differ by mean ${(sum / appInputs.length).toFixed(4)}, max ${pixel.toFixed(3)} (normalised units); ` +
        `features: relative L2 ${rel.toFixed(4)}, min cosine ${Math.min(...cos).toFixed(5)}`,
    );
    // Both resize bilinearly from the same decode; PIL antialiases when shrinking, libvips' linear kernel
    // too, but their taps and rounding differ. The stated tolerance (README): relative L2 ≤ 5 %, cosine ≥ 0.995.
    assert.ok(Math.min(...cos) >= 0.995, `cosines ${cos.join(', ')}`);
    assert.ok(rel <= 0.05, `relative L2 ${rel}`);
    assert.ok(sum / appInputs.length < 0.1, 'the two pipelines see the same picture');
  },
);

test('the documented torch.onnx.export route gives the same features', { skip }, async () => {
  const models = tmpDir('fsl-pth-onnx-');
  await addOnnxBackbone(path.join(ref, 'resnet18-seeded.onnx'), { dir: models, id: 'r18-onnx' });
  await addOnnxBackbone(path.join(ref, 'resnet18-seeded.pth'), { dir: models, id: 'r18-pth' });
  const viaOnnx = await features(models, 'r18-onnx', appInputs, images.length);
  const viaPth = await features(models, 'r18-pth', appInputs, images.length);
  assert.ok(maxAbsDiff(viaOnnx, viaPth) <= 1e-4, `${maxAbsDiff(viaOnnx, viaPth)}`);
  const arch = readManifest(models, 'user').map((e) => [e.id, e.architecture]);
  assert.deepEqual(arch, [
    ['r18-onnx', 'resnet18'],
    ['r18-pth', 'resnet18'],
  ]);
});

test(
  'a state dict wrapped as {"state_dict": …} installs; ResNet50 installs as resnet50',
  { skip },
  async () => {
    const models = tmpDir('fsl-pth-wrapped-');
    const wrapped = await addOnnxBackbone(path.join(ref, 'resnet18-wrapped.pth'), { dir: models });
    assert.equal(wrapped.architecture, 'resnet18');
    const r50 = await addOnnxBackbone(path.join(ref, 'resnet50-seeded.pth'), { dir: models });
    assert.deepEqual([r50.architecture, r50.output.dim], ['resnet50', 2048]);
  },
);

test('refusals: each a typed error, nothing installed', { skip }, async () => {
  const cases: [string, (dir: string) => string, RegExp][] = [
    ['a pickle that calls os.system', () => path.join(ref, 'evil.pth'), /asks to run "posix\.system"/],
    [
      'a truncated zip',
      (dir) => {
        const f = path.join(dir, 'cut.pth');
        const b = fs.readFileSync(path.join(ref, 'resnet18-seeded.pth'));
        fs.writeFileSync(f, b.subarray(0, Math.floor(b.length / 2)));
        return f;
      },
      /truncated/,
    ],
    [
      'one shape changed',
      () => path.join(ref, 'resnet18-shape-changed.pth'),
      /layer3\.0\.conv1\.weight has shape \[256, 128, 1, 1\], expected \[256, 128, 3, 3\]/,
    ],
    [
      'a ResNet50 file presented as ResNet18',
      (dir) => {
        const f = path.join(dir, 'resnet18-finetuned.pth');
        fs.copyFileSync(path.join(ref, 'resnet50-seeded.pth'), f);
        return f;
      },
      /holds a ResNet50 state dict, not ResNet18/,
    ],
    [
      'a hash-prefix mismatch',
      (dir) => {
        const f = path.join(dir, 'resnet18-f37072fd.pth');
        fs.copyFileSync(path.join(ref, 'resnet18-seeded.pth'), f);
        return f;
      },
      /should have a SHA-256 starting f37072fd/,
    ],
  ];
  for (const [what, make, message] of cases) {
    const models = path.join(tmpDir('fsl-pth-refuse-'), 'models');
    const file = make(path.dirname(models));
    await assert.rejects(
      addOnnxBackbone(file, { dir: models }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'MODEL_INVALID', `${what}: ${e.message}`);
        assert.match(e.message, message, what);
        return true;
      },
      what,
    );
    nothingInstalled(models);
  }
  assert.ok(!fs.existsSync(path.join(ref, 'PWNED')), 'the pickle ran nothing');
  // The same refusal through the CLI: one line, the code, a non-zero exit.
  const cli = fewshot(tmpDir('fsl-pth-cli-'), 'models', 'add', path.join(ref, 'evil.pth'));
  assert.equal(cli.code, 1);
  assert.match(cli.stderr.trim(), /^fewshot: MODEL_INVALID: .*posix\.system/);
});

test('the unpickler refuses any global outside a state dict’s vocabulary, before calling anything', () => {
  // protocol 2: GLOBAL 'os system', the argument tuple ('ls',), REDUCE, STOP.
  const pickle = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('cos\nsystem\n', 'latin1'),
    Buffer.from([0x58, 2, 0, 0, 0]),
    Buffer.from('ls', 'latin1'),
    Buffer.from([0x85, 0x52, 0x2e]),
  ]);
  assert.throws(() => restrictedUnpickle(pickle, 'x.pth'), /asks to run "os\.system"/);
  const builtins = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('c__builtin__\neval\n', 'latin1'),
    Buffer.from([0x2e]),
  ]);
  assert.throws(() => restrictedUnpickle(builtins, 'x.pth'), /"__builtin__\.eval"/);
  // An ordered dict of plain values is fine.
  const ok = Buffer.concat([
    Buffer.from([0x80, 0x02]),
    Buffer.from('ccollections\nOrderedDict\n', 'latin1'),
    Buffer.from([0x29, 0x52, 0x2e]),
  ]);
  assert.ok(restrictedUnpickle(ok, 'x.pth'));
});

test('torch.hub file names promise a hash prefix', () => {
  assert.equal(hubHashPrefix('/a/resnet18-f37072fd.pth'), 'f37072fd');
  assert.equal(hubHashPrefix('resnet18-seeded.pth'), null);
  assert.equal(hubHashPrefix('resnet-18.pth'), null, 'two digits are not a hash');
});
