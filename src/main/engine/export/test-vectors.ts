// Test vectors in the export bundle: a few training images as the exact input tensors the app builds,
// with the exported graph's logits and probabilities for them, plus the source images. An integrator
// checks their runtime (tensor in → 1e-4) apart from their decoding and resizing (image in → the stated
// tolerance). The same images also measure what Pillow's bilinear resize (torchvision's default on PIL
// images) changes in the probabilities, so the model card can state it.

import path from 'node:path';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { HighBitDepth } from '../../../shared/domain.ts';
import type { ModelRecord } from '../../../shared/results.ts';
import type { Project } from '../../store/project.ts';
import { argmax } from '../classify/linalg.ts';
import { decoder, probeImage, toRgb } from '../image/decode.ts';
import { pilEvalCrop } from '../image/pil-resize.ts';
import { evalCrop, normalizeInto, tensorSize } from '../image/preprocess.ts';
import { windowed } from '../image/windowing.ts';
import { QueuedSession, ort } from '../onnx/session.ts';
import type { ModelRunner } from '../model-runner.ts';
import { npyBytes } from './npy.ts';

export const TENSOR_TOLERANCE = 1e-4;

export interface TestVectorItem {
  index: number;
  image: string;
  label: string;
  expected: string;
  probabilities: number[];
}

export interface TestVectorSummary {
  count: number;
  tensorTolerance: number;
  /** The exported graph against the app's own classifier on the same tensors. */
  appMaxDifference: number;
  /** Pillow's BILINEAR resize + CenterCrop (torchvision's transform) in place of the app's resize. */
  pil: {
    images: number;
    sameClass: number;
    maxProbabilityDifference: number;
    /** Mean absolute difference of the cropped 8-bit RGB samples (0–255). */
    meanPixelDifference: number;
  };
}

/** Up to `count` training images, taking classes in turn so that every class appears. */
function pick(model: ModelRecord, count: number): ModelRecord['trainingSet'] {
  const byClass = new Map<string, ModelRecord['trainingSet']>();
  for (const t of model.trainingSet) byClass.set(t.class, [...(byClass.get(t.class) ?? []), t]);
  const out: ModelRecord['trainingSet'] = [];
  for (let round = 0; out.length < count; round++) {
    let added = false;
    for (const c of model.classes) {
      const t = byClass.get(c)?.[round];
      if (t && out.length < count) {
        out.push(t);
        added = true;
      }
    }
    if (!added) break;
  }
  return out;
}

export async function buildTestVectors(
  project: Project,
  model: ModelRecord,
  onnx: Uint8Array,
  spec: PreprocessSpec,
  policy: HighBitDepth,
  app: ModelRunner,
  count = 8,
): Promise<{ files: [string, string | Uint8Array][]; summary: TestVectorSummary }> {
  const chosen = pick(model, count);
  const size = tensorSize(spec);
  const inputs = new Float32Array(chosen.length * size);
  const pilInputs = new Float32Array(chosen.length * size);
  const files: [string, string | Uint8Array][] = [];
  const names: string[] = [];
  let pixelSum = 0;
  let k = 0;
  for (const t of chosen) {
    const raw = project.images.bytes(t.sha256);
    if (!raw) continue;
    const bytes = await windowed(raw, policy);
    const appImage = await evalCrop(bytes, spec);
    normalizeInto(appImage, spec, inputs, k);
    // The same decoded pixels, resized the way torchvision does it on a PIL image.
    const info = await probeImage(bytes);
    const full = await toRgb(decoder(bytes), info.format);
    const pil = pilEvalCrop(full, spec.resizeShorter ?? 256, spec.width, spec.height);
    normalizeInto(pil, spec, pilInputs, k);
    for (let i = 0; i < size; i++)
      pixelSum += Math.abs((appImage.data[i] as number) - (pil.data[i] as number));
    const rec = project.images.findBySha(t.sha256);
    const ext = rec ? path.extname(rec.relPath).toLowerCase() || `.${rec.format}` : '.img';
    const name = `${String(k + 1).padStart(2, '0')}-${t.class.replace(/[^A-Za-z0-9._-]+/g, '_')}${ext}`;
    files.push([`test-vectors/images/${name}`, raw]);
    names.push(name);
    k++;
  }
  const n = k;
  const C = model.classes.length;
  const session = await QueuedSession.create(onnx, { threads: 2, device: 'cpu' });
  const dims = (m: number) =>
    spec.layout === 'NCHW' ? [m, 3, spec.height, spec.width] : [m, spec.height, spec.width, 3];
  let logits: Float32Array;
  let probabilities: Float32Array;
  let pilProbabilities: Float32Array;
  try {
    const out = await session.run({
      [spec.name]: new ort.Tensor('float32', inputs.subarray(0, n * size), dims(n)),
    });
    logits = Float32Array.from(out.logits?.data as Float32Array);
    probabilities = Float32Array.from(out.probabilities?.data as Float32Array);
    const viaPil = await session.run({
      [spec.name]: new ort.Tensor('float32', pilInputs.subarray(0, n * size), dims(n)),
    });
    pilProbabilities = Float32Array.from(viaPil.probabilities?.data as Float32Array);
  } finally {
    await session.release();
  }
  const vectorsOfApp = await app.embedder.embed(inputs.subarray(0, n * size), n);
  const dim = vectorsOfApp.length / Math.max(1, n);
  let appMax = 0;
  for (let i = 0; i < n; i++) {
    const p = app.probabilities(vectorsOfApp.subarray(i * dim, (i + 1) * dim));
    for (let c = 0; c < C; c++)
      appMax = Math.max(appMax, Math.abs((p[c] as number) - (probabilities[i * C + c] as number)));
  }
  let maxDiff = 0;
  let same = 0;
  const items: TestVectorItem[] = [];
  for (let i = 0; i < n; i++) {
    const p = Array.from(probabilities.subarray(i * C, (i + 1) * C));
    const q = Array.from(pilProbabilities.subarray(i * C, (i + 1) * C));
    for (let c = 0; c < C; c++) maxDiff = Math.max(maxDiff, Math.abs((p[c] as number) - (q[c] as number)));
    if (argmax(p) === argmax(q)) same++;
    items.push({
      index: i,
      image: `images/${names[i] as string}`,
      label: (chosen[i] as { class: string }).class,
      expected: model.classes[argmax(p)] as string,
      probabilities: p.map((v) => Number(v.toPrecision(7))),
    });
  }
  const summary: TestVectorSummary = {
    count: n,
    tensorTolerance: TENSOR_TOLERANCE,
    appMaxDifference: appMax,
    pil: {
      images: n,
      sameClass: same,
      maxProbabilityDifference: maxDiff,
      meanPixelDifference: n ? pixelSum / (n * size) : 0,
    },
  };
  const inputShape = dims(n);
  files.push(
    ['test-vectors/inputs.npy', npyBytes(inputShape, inputs.subarray(0, n * size))],
    ['test-vectors/logits.npy', npyBytes([n, C], logits)],
    ['test-vectors/probabilities.npy', npyBytes([n, C], probabilities)],
    [
      'test-vectors/vectors.json',
      `${JSON.stringify(
        {
          inputs: {
            file: 'inputs.npy',
            dtype: 'float32',
            layout: spec.layout,
            shape: inputShape,
            name: spec.name,
          },
          outputs: { logits: 'logits.npy', probabilities: 'probabilities.npy' },
          classes: model.classes,
          tolerance: {
            tensor: `|your probabilities − probabilities.npy| ≤ ${TENSOR_TOLERANCE} (and logits ≤ ${TENSOR_TOLERANCE} × max(1, |logit|)) when inputs.npy goes straight into model.onnx`,
            image: `from the image files through libvips' resize as preprocessing.json names it, the tensor tolerance; with Pillow's BILINEAR resize and torchvision's CenterCrop instead, probabilities differed by up to ${maxDiff.toFixed(4)} on these images (${same}/${n} same class)`,
          },
          items,
        },
        null,
        2,
      )}\n`,
    ],
    ['test-vectors/check.py', CHECK_SCRIPT],
  );
  return { files, summary };
}

const CHECK_SCRIPT = `"""Checks a runtime against this bundle's test vectors: python3 check.py [--opencv]

Feeds inputs.npy (the app's own preprocessed tensors) to ../model.onnx and compares the probabilities
with probabilities.npy. Uses onnxruntime when installed, else (or with --opencv) OpenCV's DNN module.
"""
import json
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
spec = json.load(open(os.path.join(here, "vectors.json")))
x = np.load(os.path.join(here, spec["inputs"]["file"]))
expected = np.load(os.path.join(here, spec["outputs"]["probabilities"]))
model = os.path.join(here, "..", "model.onnx")
use_cv = "--opencv" in sys.argv
if not use_cv:
    try:
        import onnxruntime as ort
    except ImportError:
        use_cv = True
if use_cv:
    import cv2

    net = cv2.dnn.readNetFromONNX(model)
    got = []
    for i in range(x.shape[0]):
        net.setInput(x[i : i + 1], spec["inputs"]["name"])
        got.append(net.forward("probabilities")[0])
    got = np.stack(got)
    runtime = "OpenCV " + cv2.__version__
else:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {spec["inputs"]["name"]: x})[0]
    runtime = "onnxruntime " + ort.__version__
diff = float(np.abs(got - expected).max())
same = int((got.argmax(1) == expected.argmax(1)).sum())
print(f"{runtime}: max |p - expected| = {diff:.2e}, {same}/{len(x)} same class")
sys.exit(0 if diff <= 1e-4 and same == len(x) else 1)
`;
