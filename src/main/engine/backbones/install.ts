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
import { checkHubHash, convertPth, TORCHVISION_FILES } from './pth-import.ts';
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
  /** The architecture the user says the file is (e.g. "resnet18"); a .pth file must match it. */
  architecture?: string;
  /** Models folder to install into. */
  dir: string;
  /** Called as the work advances: a short description of the step, and the share done (0–1). */
  onProgress?: (step: string, fraction: number) => void;
}

interface Converted {
  model: OnnxModel;
  architecture: string;
  defaultId: string;
  source: string;
  pretraining?: string;
  sha256?: string;
}

/** PyTorch checkpoints and TF.js layers models become ONNX; an ONNX file is used as it is. */
function convertIfNeeded(file: string, options: AddOptions): Converted | null {
  const ext = path.extname(file).toLowerCase();
  const progress = options.onProgress ?? (() => {});
  if (ext === '.pth' || ext === '.pt' || ext === '.bin') {
    progress('Checking the file', 0.05);
    const sha256 = fileSha256(file);
    checkHubHash(file, sha256);
    progress('Reading the PyTorch checkpoint', 0.15);
    const pth = convertPth(file, options.architecture);
    const stem = path.basename(file, path.extname(file));
    const known = TORCHVISION_FILES[stem];
    return {
      model: pth.model,
      architecture: pth.architecture,
      defaultId: known?.id ?? stem,
      source: `converted to ONNX from the PyTorch state dict ${path.basename(file)}`,
      pretraining: known?.pretraining ?? `as in ${path.basename(file)} (not verified)`,
      sha256,
    };
  }
  if (ext === '.json') {
    progress('Converting the TF.js model', 0.15);
    const converted = convertTfjsLayers(file);
    return {
      model: converted.model,
      architecture: converted.architecture,
      defaultId: path.basename(path.dirname(path.resolve(file))),
      source: `converted to ONNX from the TF.js layers model ${path.basename(file)}`,
    };
  }
  return null;
}

/** Validates a backbone file (.onnx, a PyTorch .pth state dict, or a TF.js model.json), converts and installs it. */
export async function addOnnxBackbone(file: string, options: AddOptions): Promise<BackboneEntry> {
  if (!fs.existsSync(file)) throw new FewShotError('NOT_FOUND', `No file at ${file}.`);
  if (fs.statSync(file).isDirectory())
    throw new FewShotError('INVALID_INPUT', `${file} is a folder; choose a .pth, .onnx or model.json file.`);
  const progress = options.onProgress ?? (() => {});
  // A TF.js layers model (model.json + weights) is converted to ONNX first; MobileNet-style networks
  // expect x/127.5 − 1, so that is the default preset for them.
  const fromTfjs = file.toLowerCase().endsWith('.json');
  const presetName = options.preset ?? (fromTfjs ? 'tf-inception' : 'imagenet');
  const preset = PRESETS[presetName];
  if (!preset)
    throw new FewShotError(
      'INVALID_INPUT',
      `Unknown preset "${presetName}"; use one of ${Object.keys(PRESETS).join(', ')}.`,
    );
  const converted = convertIfNeeded(file, options);
  const work = converted ? fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-convert-')) : null;
  const source = converted && work ? path.join(work, 'model.onnx') : file;
  try {
    if (converted) fs.writeFileSync(source, encodeModel(converted.model));
    progress('Checking that ONNX Runtime can run it', 0.6);
    const info = await inspectOnnxBackbone(source);
    const defaultName = converted ? converted.defaultId : path.basename(file, path.extname(file));
    const id = options.id ?? defaultName.toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(id))
      throw new FewShotError(
        'INVALID_INPUT',
        `"${id}" cannot be a backbone id; use letters, digits, ".", "_" or "-".`,
      );
    progress('Installing', 0.9);
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
      source: converted ? converted.source : `added from ${path.basename(file)}`,
      ...(converted?.pretraining ? { pretraining: converted.pretraining } : {}),
      ...(converted?.sha256 ? { origin: { file: path.basename(file), sha256: converted.sha256 } } : {}),
    };
    upsertManifestEntry(options.dir, entry);
    progress('Installed', 1);
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
