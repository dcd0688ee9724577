// A torchvision ResNet state dict (e.g. torchvision's own `resnet18-f37072fd.pth`) becomes an ONNX
// backbone: the project's ResNet generator builds the graph with torchvision's names, and every weight is
// taken from the file after its name and shape are checked. A file named like torch.hub's downloads
// (`<name>-<sha256 prefix>.pth`) must hash to that prefix, as torch.hub's check_hash requires.

import { FewShotError } from '../../../shared/errors.ts';
import path from 'node:path';
import { floatTensor, type OnnxModel } from '../onnx/model.ts';
import { readCheckpoint, type Checkpoint } from './pytorch-checkpoint.ts';
import { buildResNet, RESNET_DEPTHS, type ResNetDepth } from './resnet18.ts';

/** torchvision's published ResNet checkpoints: file stem → the id and pretraining they install as. */
export const TORCHVISION_FILES: Record<string, { id: string; pretraining: string }> = {
  'resnet18-f37072fd': { id: 'resnet18-imagenet', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V1)' },
  'resnet34-b627a593': { id: 'resnet34-imagenet', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V1)' },
  'resnet50-0676ba61': { id: 'resnet50-imagenet', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V1)' },
  'resnet50-11ad3fa6': { id: 'resnet50-imagenet-v2', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V2)' },
  'resnet101-63fe2227': { id: 'resnet101-imagenet', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V1)' },
  'resnet152-394f9c45': { id: 'resnet152-imagenet', pretraining: 'ImageNet-1k (torchvision IMAGENET1K_V1)' },
};

/** torch.hub's rule: `name-<hex>.ext` promises a SHA-256 that starts with <hex> (8 or more digits here). */
export function hubHashPrefix(file: string): string | null {
  const m = /-([a-f0-9]{8,64})\./.exec(path.basename(file));
  return m ? (m[1] as string) : null;
}

export function checkHubHash(file: string, sha256: string): void {
  const prefix = hubHashPrefix(file);
  if (prefix && !sha256.startsWith(prefix))
    throw new FewShotError(
      'MODEL_INVALID',
      `${path.basename(file)} should have a SHA-256 starting ${prefix}, but its SHA-256 is ${sha256.slice(0, 16)}…: the file is damaged or is not the one its name says. Nothing was installed; copy it again from its source.`,
    );
}

/** Which torchvision ResNet a state dict is, from its block counts and block kind; null if not a ResNet. */
export function detectResNet(ckpt: Checkpoint): ResNetDepth | null {
  const names = [...ckpt.tensors.keys()];
  if (!ckpt.tensors.has('conv1.weight') || !names.some((n) => n.startsWith('layer4.'))) return null;
  const counts = [1, 2, 3, 4].map((l) => {
    let max = -1;
    for (const n of names) {
      const m = new RegExp(`^layer${l}\\.(\\d+)\\.`).exec(n);
      if (m) max = Math.max(max, Number(m[1]));
    }
    return max + 1;
  });
  const bottleneck = ckpt.tensors.has('layer1.0.conv3.weight');
  for (const [depth, spec] of Object.entries(RESNET_DEPTHS)) {
    if (spec.bottleneck === bottleneck && spec.blocks.every((b, i) => b === counts[i]))
      return Number(depth) as ResNetDepth;
  }
  return null;
}

function describe(ckpt: Checkpoint): string {
  const names = [...ckpt.tensors.keys()];
  const tops = [...new Set(names.map((n) => n.split('.')[0]))].slice(0, 6);
  let guess = '';
  if (names.some((n) => n.startsWith('features.')) && names.some((n) => n.startsWith('classifier.')))
    guess = ' (a features/classifier network such as VGG, AlexNet, MobileNet, SqueezeNet or DenseNet)';
  else if (names.some((n) => n.startsWith('blocks.') || n.startsWith('patch_embed.')))
    guess = ' (a vision-transformer or timm-style network)';
  else if (names.some((n) => n.startsWith('layer1.')))
    guess = ' (ResNet-like names, but not a torchvision ResNet layout)';
  return `${names.length} tensors under ${tops.join(', ')}${names.length > tops.length ? ', …' : ''}${guess}`;
}

export interface ConvertedPth {
  model: OnnxModel;
  architecture: string;
  depth: ResNetDepth;
  /** The feature size of the pooled output. */
  dim: number;
  hasClassifier: boolean;
}

/**
 * Builds the ONNX graph for a torchvision ResNet state dict. `expected` (an architecture such as
 * "resnet18", from the user or the file's name) must match what the file holds.
 */
export function convertResNetStateDict(ckpt: Checkpoint, file: string, expected?: string): ConvertedPth {
  const depth = detectResNet(ckpt);
  const base = path.basename(file);
  if (depth === null)
    throw new FewShotError(
      'MODEL_INVALID',
      `${base} is not a torchvision ResNet state dict; found ${describe(ckpt)}. This app reads ResNet18/34/50/101/152 checkpoints directly; for other networks, export an ONNX file with torch.onnx.export and add that.`,
    );
  const architecture = `resnet${depth}`;
  if (expected && expected !== architecture)
    throw new FewShotError(
      'MODEL_INVALID',
      `${base} holds a ${architecture.replace('resnet', 'ResNet')} state dict, not ${expected.replace('resnet', 'ResNet')}. Nothing was installed.`,
    );
  const fc = ckpt.tensors.get('fc.weight');
  const numClasses = fc?.shape[0] ?? 1000;
  const model = buildResNet({ depth, numClasses });
  const graph = model.graph;
  const used = new Set<string>();
  const problems: string[] = [];
  const inits = graph.initializers.map((init) => {
    const t = ckpt.tensors.get(init.name);
    if (!t) {
      if (init.name.startsWith('fc.') && !fc) return init;
      problems.push(`${init.name} is missing`);
      return init;
    }
    used.add(init.name);
    if (!(t.data instanceof Float32Array)) {
      problems.push(`${init.name} is ${t.dtype}, not floating point`);
      return init;
    }
    if (t.shape.length !== init.dims.length || t.shape.some((d, i) => d !== init.dims[i])) {
      problems.push(`${init.name} has shape [${t.shape.join(', ')}], expected [${init.dims.join(', ')}]`);
      return init;
    }
    for (let i = 0; i < t.data.length; i++)
      if (!Number.isFinite(t.data[i])) {
        problems.push(`${init.name} holds NaN or infinite values`);
        return init;
      }
    return floatTensor(init.name, init.dims, t.data);
  });
  for (const name of ckpt.tensors.keys()) {
    if (!used.has(name) && !name.endsWith('.num_batches_tracked'))
      problems.push(`${name} is not part of ${architecture}`);
  }
  if (problems.length > 0)
    throw new FewShotError(
      'MODEL_INVALID',
      `${base} does not match torchvision's ${architecture}: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}. Nothing was installed.`,
    );
  graph.initializers = inits;
  if (!fc) {
    // A headless state dict (a feature extractor): the graph ends at the pooled features.
    graph.nodes = graph.nodes.filter((n) => n.name !== 'fc');
    graph.initializers = graph.initializers.filter((t) => !t.name.startsWith('fc.'));
    const dim = 512 * (RESNET_DEPTHS[depth].bottleneck ? 4 : 1);
    graph.outputs = [
      { ...(graph.outputs[0] as (typeof graph.outputs)[0]), name: 'flatten_output', shape: ['N', dim] },
    ];
  }
  model.producerName = 'fewshot-lab pth import';
  model.docString = `torchvision ${architecture} with weights from ${base}.`;
  model.metadata = { source: base };
  const dim = 512 * (RESNET_DEPTHS[depth].bottleneck ? 4 : 1);
  return { model, architecture, depth, dim, hasClassifier: Boolean(fc) };
}

/** The architecture a file's name promises (`resnet18-….pth` → resnet18), if any. */
export function architectureFromName(file: string): string | undefined {
  const m = /^(resnet(?:18|34|50|101|152))(?![0-9])/i.exec(path.basename(file));
  return m ? (m[1] as string).toLowerCase() : undefined;
}

export function convertPth(file: string, expected?: string): ConvertedPth {
  return convertResNetStateDict(readCheckpoint(file), file, expected ?? architectureFromName(file));
}
