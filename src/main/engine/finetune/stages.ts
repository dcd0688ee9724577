// Where fine-tuning starts in each supported backbone: the tensor that feeds its last stage, or its last
// two stages (ResNet18 layer4 / layer3+layer4, SqueezeNet fire9 / fire8+fire9, MobileNetV2 block 16 /
// blocks 13–16), or the image itself; and the nodes between that cut and the pooled features.

import { FewShotError } from '../../../shared/errors.ts';
import { partOf, type FinetuneStrategy } from '../../../shared/strategies.ts';
import { cutAt, producers } from '../onnx/graph.ts';
import type { OnnxModel, OnnxNode } from '../onnx/model.ts';

const STAGES: {
  match: (architecture: string) => boolean;
  last: string[];
  lastTwo: string[];
}[] = [
  {
    match: (a) => /^resnet(18|34|50|101|152)$/.test(a),
    last: ['layer4.'],
    lastTwo: ['layer3.'],
  },
  {
    match: (a) => a.startsWith('squeezenet'),
    last: ['fire9/', 'fire9.'],
    lastTwo: ['fire8/', 'fire8.'],
  },
  {
    // The last inverted-residual block (then Conv_1 to the 1280 features); two stages: the 160-channel
    // blocks 13–15 and block 16.
    match: (a) => a.startsWith('mobilenet_v2'),
    last: ['block_16_'],
    lastTwo: ['block_13_'],
  },
];

/** What a strategy retrains in this architecture, in words (for the Train screen and the model card). */
export function trainedPart(architecture: string, strategy: FinetuneStrategy): string {
  return partOf(architecture, strategy) ?? 'unknown';
}

/** The tensor where the trained part starts: the input of the first conv whose weights belong to it. */
export function stageCut(model: OnnxModel, architecture: string, strategy: FinetuneStrategy): string {
  if (strategy === 'full') return model.graph.inputs[0]?.name as string;
  const s = STAGES.find((x) => x.match(architecture));
  if (!s)
    throw new FewShotError(
      'INVALID_INPUT',
      `Partial fine-tuning is defined for ResNet18, SqueezeNet and MobileNetV2, not ${architecture}.`,
    );
  const prefixes = strategy === 'last-stage' ? s.last : s.lastTwo;
  const first = model.graph.nodes.find(
    (n) =>
      n.opType === 'Conv' && prefixes.some((p) => (n.inputs[1] ?? '').startsWith(p) || n.name.startsWith(p)),
  );
  if (!first?.inputs[0])
    throw new FewShotError('MODEL_INVALID', `Cannot find ${prefixes[0]} in this ${architecture} graph.`);
  return first.inputs[0];
}

/** The tensor where the last stage starts. */
export function lastStageCut(model: OnnxModel, architecture: string): string {
  return stageCut(model, architecture, 'last-stage');
}

/** Nodes that compute `features` from `cut` (those computing `cut` itself are the frozen prefix). */
export function tailNodes(model: OnnxModel, cut: string, features: string): OnnxNode[] {
  const need = new Set(cutAt(model, features).graph.nodes);
  const input = model.graph.inputs[0]?.name;
  const prefix = cut === input ? new Set<OnnxNode>() : new Set(cutAt(model, cut).graph.nodes);
  const byOutput = producers(model);
  if (cut !== input && !byOutput.has(cut))
    throw new FewShotError('MODEL_INVALID', `No tensor "${cut}" in the graph.`);
  return model.graph.nodes.filter((n) => need.has(n) && !prefix.has(n));
}
