// Bringing a backbone in: validate an ONNX file the user has, register it in a models folder, and write
// the seeded ResNet18 used by tests and benchmarks.

import { writeFileAtomic } from '../atomic-file.ts';
import fs from 'node:fs';
import os from 'node:os';
import { convertTfjsLayers } from './tfjs-import.ts';
import path from 'node:path';
import {
  BackboneEntrySchema,
  IMAGENET_RGB,
  type BackboneEntry,
  type PreprocessSpec,
} from '../../../shared/backbones.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { cutAt, dataInputs, findFeatureTensor } from '../onnx/graph.ts';
import { decodeModel, encodeModel, type OnnxModel } from '../onnx/model.ts';
import { QueuedSession, ort } from '../onnx/session.ts';
import { fileSha256 } from './backbone.ts';
import { buildResNet18 } from './resnet18.ts';

export const PRESETS: Record<string, Omit<PreprocessSpec, 'name'>> = {
  imagenet: IMAGENET_RGB,
  'caffe-bgr': {
    ...IMAGENET_RGB,
    channels: 'BGR',
    scale: 1,
    mean: [103.939, 116.779, 123.68],
    std: [1, 1, 1],
  },
  'tf-inception': { ...IMAGENET_RGB, scale: 1 / 127.5, mean: [127.5, 127.5, 127.5], std: [1, 1, 1] },
};

/** Recognises torchvision's ResNet18 by its layer names or, for exports with folded BatchNorm, its shape. */
export function detectArchitecture(model: OnnxModel): string {
  const names = new Set([
    ...model.graph.initializers.map((t) => t.name),
    ...model.graph.nodes.map((n) => n.name),
  ]);
  const convs = model.graph.nodes.filter((n) => n.opType === 'Conv').length;
  const adds = model.graph.nodes.filter((n) => n.opType === 'Add').length;
  const hasLayer4 = [...names].some(
    (n) => n.includes('layer4.1.conv2') || n.includes('layer4/layer4.1/conv2'),
  );
  const hasLayer5 = [...names].some((n) => n.includes('layer4.2.'));
  if (hasLayer4 && !hasLayer5 && convs === 20) return 'resnet18';
  if (convs === 20 && adds === 8) return 'resnet18';
  return 'custom';
}

export interface InspectResult {
  architecture: string;
  inputName: string;
  layout: 'NCHW' | 'NHWC';
  height: number;
  width: number;
  featureTensor: string;
  dim: number;
}

/** Checks that an ONNX file is an image backbone this app can use and measures its feature size. */
export async function inspectOnnxBackbone(file: string): Promise<InspectResult> {
  let model: OnnxModel;
  try {
    model = decodeModel(fs.readFileSync(file));
  } catch (e) {
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} is not a readable ONNX model: ${(e as Error).message}`,
    );
  }
  const inputs = dataInputs(model);
  if (inputs.length !== 1)
    throw new FewShotError('MODEL_INVALID', `Expected one image input; the model has ${inputs.length}.`);
  const input = inputs[0] as NonNullable<(typeof inputs)[0]>;
  const shape = input.shape ?? [];
  if (shape.length !== 4)
    throw new FewShotError(
      'MODEL_INVALID',
      `The input "${input.name}" is not an image batch (rank ${shape.length}).`,
    );
  const layout = shape[1] === 3 ? 'NCHW' : shape[3] === 3 ? 'NHWC' : null;
  if (!layout)
    throw new FewShotError(
      'MODEL_INVALID',
      `The input "${input.name}" has no 3-channel axis (shape ${JSON.stringify(shape)}).`,
    );
  const [hDim, wDim] = layout === 'NCHW' ? [shape[2], shape[3]] : [shape[1], shape[2]];
  const height = typeof hDim === 'number' && hDim > 0 ? hDim : 224;
  const width = typeof wDim === 'number' && wDim > 0 ? wDim : 224;
  const featureTensor = findFeatureTensor(model);
  const cut = cutAt(model, featureTensor);
  let dim: number;
  try {
    const session = await QueuedSession.create(encodeModel(cut), { threads: 1, device: 'cpu' });
    const dims = layout === 'NCHW' ? [1, 3, height, width] : [1, height, width, 3];
    const out = await session.run({
      [input.name]: new ort.Tensor('float32', new Float32Array(3 * height * width), dims),
    });
    dim = (out[featureTensor]?.data as Float32Array).length;
    await session.release();
  } catch (e) {
    throw new FewShotError('MODEL_INVALID', `ONNX Runtime cannot run this model: ${(e as Error).message}`);
  }
  return {
    architecture: detectArchitecture(model),
    inputName: input.name,
    layout,
    height,
    width,
    featureTensor,
    dim,
  };
}

/** Adds or replaces an entry in a models folder's manifest.json. */
export function upsertManifestEntry(dir: string, entry: BackboneEntry): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  let models: unknown[] = [];
  if (fs.existsSync(file)) {
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { models?: unknown[] };
    models = (raw.models ?? []).filter((m) => (m as { id?: string }).id !== entry.id);
  }
  models.push(BackboneEntrySchema.parse(entry));
  writeFileAtomic(file, `${JSON.stringify({ schema: 1, models }, null, 2)}\n`);
}

export interface AddOptions {
  id?: string;
  preset?: string;
  /** Models folder to install into. */
  dir: string;
}

export async function addOnnxBackbone(file: string, options: AddOptions): Promise<BackboneEntry> {
  if (!fs.existsSync(file)) throw new FewShotError('NOT_FOUND', `No file at ${file}.`);
  // A TF.js layers model (model.json + weights) is converted to ONNX first; MobileNet-style networks
  // expect x/127.5 − 1, so that is the default preset for them.
  const fromTfjs = file.endsWith('.json');
  const presetName = options.preset ?? (fromTfjs ? 'tf-inception' : 'imagenet');
  const preset = PRESETS[presetName];
  if (!preset)
    throw new FewShotError(
      'INVALID_INPUT',
      `Unknown preset "${presetName}"; use one of ${Object.keys(PRESETS).join(', ')}.`,
    );
  const converted = fromTfjs ? convertTfjsLayers(file) : null;
  const work = converted ? fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-convert-')) : null;
  const source = converted && work ? path.join(work, 'model.onnx') : file;
  try {
    if (converted) fs.writeFileSync(source, encodeModel(converted.model));
    const info = await inspectOnnxBackbone(source);
    const defaultName = converted
      ? path.basename(path.dirname(path.resolve(file)))
      : path.basename(file, path.extname(file));
    const id = options.id ?? defaultName.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
    const dest = path.join(options.dir, id, 'model.onnx');
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    writeFileAtomic(dest, fs.readFileSync(source));
    const entry: BackboneEntry = {
      id,
      architecture: converted?.architecture ?? info.architecture,
      format: 'onnx',
      file: `${id}/model.onnx`,
      sha256: fileSha256(dest),
      input: { ...preset, name: info.inputName, layout: info.layout, height: info.height, width: info.width },
      output: { dim: info.dim },
      source: converted
        ? `converted to ONNX from the TF.js layers model ${path.basename(file)}`
        : `added from ${path.basename(file)}`,
    };
    upsertManifestEntry(options.dir, entry);
    return entry;
  } finally {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Writes the seeded ResNet18 into `dir` (a models folder) unless it is already there. */
export function ensureRandomResNet18(dir: string, seed = 0, id = 'resnet18-random'): BackboneEntry {
  const modelFile = path.join(dir, id, 'model.onnx');
  if (!fs.existsSync(modelFile)) {
    fs.mkdirSync(path.dirname(modelFile), { recursive: true });
    writeFileAtomic(modelFile, encodeModel(buildResNet18({ seed })));
  }
  const entry: BackboneEntry = {
    id,
    architecture: 'resnet18',
    format: 'onnx',
    file: `${id}/model.onnx`,
    sha256: fileSha256(modelFile),
    input: { ...IMAGENET_RGB, name: 'input' },
    output: { dim: 512 },
    pretraining: `none (seeded random weights, seed ${seed})`,
    source: 'fewshot-lab ResNet18 generator',
  };
  upsertManifestEntry(dir, entry);
  return entry;
}
