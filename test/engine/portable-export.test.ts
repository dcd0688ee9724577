// An exported model that other software can run: the bundle's graph uses only portable operators, and
// OpenCV's DNN module (Debian python3-opencv) — a second runtime many instrument pipelines use — loads a
// linear and a last-stage bundle, reproduces the test vectors' probabilities to 1e-4 and gives the app's
// class for 200 more images. The Pillow resize the model card quotes is Pillow's own, to the pixel.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { exportModel } from '../../src/main/engine/export/bundle.ts';
import { PORTABLE_OPS, portableGraph } from '../../src/main/engine/export/portable.ts';
import { decoder, toRgb } from '../../src/main/engine/image/decode.ts';
import { pilEvalCrop } from '../../src/main/engine/image/pil-resize.ts';
import { preprocessInto, tensorSize } from '../../src/main/engine/image/preprocess.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import {
  DataType,
  decodeModel,
  encodeModel,
  floatTensor,
  type OnnxModel,
} from '../../src/main/engine/onnx/model.ts';
import { QueuedSession, ort } from '../../src/main/engine/onnx/session.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';
import { readNpy, writeNpy } from '../helpers/npy.ts';
import { PYTHON } from '../helpers/torch.ts';

const cv2 = spawnSync(PYTHON, ['-c', 'import cv2, numpy'], { stdio: 'ignore' }).status === 0;
if (!cv2)
  console.warn(
    `\n*** ${PYTHON} cannot import cv2 (apt-get install python3-opencv): the OpenCV checks are SKIPPED ***\n`,
  );
const needsCv2 = cv2 ? false : `needs OpenCV (${PYTHON} -c "import cv2" failed)`;
const pil = spawnSync(PYTHON, ['-c', 'import PIL, numpy'], { stdio: 'ignore' }).status === 0;

const OPENCV_SCRIPT = `
import json, sys
import cv2
import numpy as np
bundle, extra, out = sys.argv[1], sys.argv[2], sys.argv[3]
net = cv2.dnn.readNetFromONNX(bundle + "/model.onnx")
def run(x):
    got = []
    for i in range(x.shape[0]):
        net.setInput(x[i:i + 1].copy(), "input")
        got.append(net.forward("probabilities")[0].copy())
    return np.stack(got)
x = np.load(bundle + "/test-vectors/inputs.npy")
expected = np.load(bundle + "/test-vectors/probabilities.npy")
vectors = run(x)
np.save(out + "/vectors.npy", vectors.astype(np.float32))
np.save(out + "/extra.npy", run(np.load(extra)).astype(np.float32))
print(json.dumps({"opencv": cv2.__version__, "vectorsMaxDiff": float(np.abs(vectors - expected).max())}))
`;

let project: Project;
let backbone: Backbone;
let extraInputs = '';
let extraCount = 0;

before(async () => {
  if (needsShared) return;
  useModelDirs(tmpDir('fsl-portable-models-'));
  const root = path.join(tmpDir('fsl-portable-'), 'cells');
  const extra: string[] = [];
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    const files = fs.readdirSync(path.join(BCCD, cls)).sort();
    for (const f of files.slice(0, 15)) fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
    extra.push(...files.slice(15, 15 + 67).map((f) => path.join(BCCD, cls, f)));
  }
  project = Project.create(path.join(tmpDir(), 'portable.fsl'));
  await importFolder(project, root, {});
  backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  // 200 images the models never saw, as the app's own input tensors.
  const chosen = extra.slice(0, 200);
  extraCount = chosen.length;
  const x = new Float32Array(chosen.length * tensorSize(backbone.spec));
  for (const [i, f] of chosen.entries()) await preprocessInto(fs.readFileSync(f), backbone.spec, x, i);
  extraInputs = path.join(tmpDir(), 'extra.npy');
  writeNpy(extraInputs, [chosen.length, 3, 224, 224], x);
});
after(async () => {
  await backbone?.release();
  project?.close();
});

async function ortProbabilities(bundle: string, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await QueuedSession.create(path.join(bundle, 'model.onnx'), { threads: 2, device: 'cpu' });
  try {
    const out = await s.run({ input: new ort.Tensor('float32', x, [n, 3, 224, 224]) });
    return Float32Array.from(out.probabilities?.data as Float32Array);
  } finally {
    await s.release();
  }
}

function argmaxRows(p: Float32Array, c: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < p.length / c; i++) {
    const row = Array.from(p.subarray(i * c, (i + 1) * c));
    out.push(row.indexOf(Math.max(...row)));
  }
  return out;
}

for (const strategy of ['linear', 'last-stage'] as const) {
  test(
    `a ${strategy} bundle runs in OpenCV DNN: test vectors to 1e-4, 200 images to the app's classes`,
    {
      skip: needsShared || needsCv2,
      timeout: 300_000,
    },
    async () => {
      let modelId: string;
      if (strategy === 'linear')
        modelId = (await trainModel(project, backbone, { strategy, seed: 2 })).modelId;
      else {
        const { trainFinetuneModel } = await import('../../src/main/engine/finetune/train-finetune.ts');
        const { DEFAULT_AUGMENT } = await import('../../src/shared/augment.ts');
        modelId = (
          await trainFinetuneModel(project, resolveBackbone(SQUEEZENET), {
            strategy,
            epochs: 2,
            seed: 4,
            views: 2,
            augment: DEFAULT_AUGMENT,
          })
        ).modelId;
      }
      const bundle = path.join(tmpDir(), `bundle-${strategy}`);
      const r = await exportModel(project, modelId, resolveBackbone(SQUEEZENET), backbone, bundle);
      assert.ok(r.parity.passed, JSON.stringify(r.parity));
      const graph = decodeModel(fs.readFileSync(path.join(bundle, 'model.onnx')));
      const ops = [...new Set(graph.graph.nodes.map((n) => n.opType))];
      assert.deepEqual(
        ops.filter((o) => !PORTABLE_OPS.includes(o)),
        [],
        'only portable operators',
      );
      const pre = JSON.parse(fs.readFileSync(path.join(bundle, 'preprocessing.json'), 'utf8')) as {
        graph: { operators: string[] };
        steps: { op: string; implementation?: string }[];
      };
      assert.deepEqual(pre.graph.operators, [...ops].sort());
      assert.match(
        pre.steps.find((s) => s.op === 'resize')?.implementation ?? '',
        /libvips [\d.]+ through sharp/,
      );

      const work = tmpDir('fsl-opencv-');
      const script = path.join(work, 'opencv_check.py');
      fs.writeFileSync(script, OPENCV_SCRIPT);
      const run = spawnSync(PYTHON, [script, bundle, extraInputs, work], {
        encoding: 'utf8',
        timeout: 240_000,
      });
      assert.equal(run.status, 0, run.stderr);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() as string) as {
        opencv: string;
        vectorsMaxDiff: number;
      };
      console.log(
        `${strategy}: OpenCV ${report.opencv}, test vectors max |Δp| = ${report.vectorsMaxDiff.toExponential(2)}`,
      );
      assert.ok(report.vectorsMaxDiff <= 1e-4, `test vectors differ by ${report.vectorsMaxDiff}`);

      const classes = (JSON.parse(fs.readFileSync(path.join(bundle, 'labels.json'), 'utf8')) as string[])
        .length;
      const extra = readNpy(extraInputs);
      const app = await ortProbabilities(bundle, extra.data, extraCount);
      const cv = readNpy(path.join(work, 'extra.npy'));
      assert.deepEqual(
        argmaxRows(cv.data, classes),
        argmaxRows(app, classes),
        'OpenCV gives the app’s class for all 200',
      );
      let maxDiff = 0;
      for (let i = 0; i < app.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs((app[i] as number) - (cv.data[i] as number)));
      assert.ok(maxDiff <= 1e-4, `200 images: max |Δp| ${maxDiff}`);

      // The bundle's own check script, as an integrator runs it.
      const check = spawnSync(PYTHON, [path.join(bundle, 'test-vectors', 'check.py'), '--opencv'], {
        encoding: 'utf8',
      });
      assert.equal(check.status, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /OpenCV 4\.\d+\.\d+: max \|p - expected\| = .*, 8\/8 same class/);
      const card = fs.readFileSync(path.join(bundle, 'model-card.md'), 'utf8');
      assert.match(card, /## Checking your runtime/);
      assert.match(card, /probabilities by up to \d\.\d{4}, with \d+ of 8 images given the same class/);
    },
  );
}

test(
  'Pillow’s bilinear resize and CenterCrop, re-implemented, equal Pillow’s pixels',
  {
    skip: needsShared || (!pil && `needs Pillow (${PYTHON} -c "import PIL")`),
  },
  async () => {
    const files = [
      path.join(BCCD, 'WBC', fs.readdirSync(path.join(BCCD, 'WBC')).sort()[0] as string),
      path.join(BCCD, 'Platelets', fs.readdirSync(path.join(BCCD, 'Platelets')).sort()[0] as string),
    ];
    const dir = tmpDir('fsl-pil-');
    // Shrinking as well as enlarging: a 913 × 611 version of a crop.
    const big = path.join(dir, 'big.png');
    const sharp = (await import('sharp')).default;
    await sharp(files[0]).resize(913, 611).png().toFile(big);
    for (const f of [...files, big]) {
      const rgb = await toRgb(decoder(fs.readFileSync(f)));
      const raw = path.join(dir, 'raw.bin');
      fs.writeFileSync(raw, rgb.data);
      const r = spawnSync(
        PYTHON,
        [
          '-c',
          `import sys
from PIL import Image
im = Image.frombytes("RGB", (${rgb.width}, ${rgb.height}), open(sys.argv[1], "rb").read())
w, h = im.size
s = 256
size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
im = im.resize(size, Image.BILINEAR)
left, top = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
sys.stdout.buffer.write(im.crop((left, top, left + 224, top + 224)).tobytes())`,
          raw,
        ],
        { maxBuffer: 1 << 24 },
      );
      assert.equal(r.status, 0, r.stderr?.toString());
      const ours = pilEvalCrop(rgb, 256, 224, 224);
      const theirs = r.stdout;
      let differing = 0;
      for (let i = 0; i < theirs.length; i++) if (theirs[i] !== ours.data[i]) differing++;
      assert.equal(
        differing,
        0,
        `${path.basename(f)} (${rgb.width}×${rgb.height}): ${differing} samples differ`,
      );
    }
  },
);

function lpGraph(op: 'LpNormalization' | 'LeakyRelu'): OnnxModel {
  return {
    irVersion: 7,
    opsets: [{ domain: '', version: 13 }],
    producerName: 't',
    producerVersion: '1',
    docString: '',
    metadata: {},
    graph: {
      name: 'g',
      nodes: [
        {
          name: 'n',
          opType: op,
          domain: '',
          inputs: ['x'],
          outputs: ['y'],
          attributes:
            op === 'LpNormalization'
              ? [
                  { name: 'axis', type: 'int', i: 1 },
                  { name: 'p', type: 'int', i: 2 },
                ]
              : [],
        },
        {
          name: 'gemm',
          opType: 'Gemm',
          domain: '',
          inputs: ['y', 'w'],
          outputs: ['z'],
          attributes: [{ name: 'transB', type: 'int', i: 1 }],
        },
      ],
      initializers: [floatTensor('w', [2, 4], Float32Array.from([1, 2, 3, 4, -1, 0.5, 2, 0]))],
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: ['N', 4] }],
      outputs: [{ name: 'z', elemType: DataType.FLOAT, shape: ['N', 2] }],
      valueInfo: [],
      unknown: [],
    },
    unknown: [],
  };
}

test('older graphs are rewritten into portable operators with the same outputs; others are refused', async () => {
  const original = lpGraph('LpNormalization');
  const { model, ops } = portableGraph(original);
  assert.deepEqual(ops, ['Add', 'Div', 'Gemm', 'MatMul', 'Mul', 'Sqrt']);
  const x = new ort.Tensor('float32', Float32Array.from([3, -4, 0, 12, 0.5, 0.25, -2, 1]), [2, 4]);
  const run = async (m: OnnxModel) => {
    const s = await QueuedSession.create(encodeModel(m), { threads: 1, device: 'cpu' });
    const out = Float32Array.from((await s.run({ x })).z?.data as Float32Array);
    await s.release();
    return out;
  };
  const [a, b] = [await run(original), await run(model)];
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= 1e-6);
  assert.throws(
    () => portableGraph(lpGraph('LeakyRelu')),
    /would use LeakyRelu, which not every ONNX consumer accepts/,
  );
});
