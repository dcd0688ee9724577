// model-card.md: what the model is for, what it was trained on, how well it did, and what to beware of.

import type { Head } from '../classify/heads.ts';
import type { ModelRecord } from '../../../shared/results.ts';
import type { ExportSummary } from '../../../shared/results.ts';
import { calibrationLabel, estimateLabel } from '../../../shared/estimate-labels.ts';
import { isFinetuned } from '../../../shared/strategies.ts';

type Parity = ExportSummary['parity'];
import { PERCENTILE_WINDOW } from '../../../shared/domain.ts';
import { modelHighBitDepth } from '../image/windowing.ts';
import type { TestVectorSummary } from './test-vectors.ts';
import { formatSetting, pct, points } from '../report/format.ts';

/**
 * The first limitation, written from the smallest class and the accuracy interval: "wide" only where it
 * is; the warning about other scanners, stains and sites stays however many images there are.
 */
export function sizeLimitation(total: number, minCount: number, est: ModelRecord['metrics']): string {
  const start = `Trained on ${total} images; the smallest class has ${minCount}.`;
  const transfer =
    'The figures describe images like these; the model may not transfer to other scanners, stains or sites.';
  if (!est) return `${start} No evaluation was stored, so how well it does is unknown. ${transfer}`;
  const width = est.accuracy.ci95[1] - est.accuracy.ci95[0];
  if (minCount < 30)
    return `${start} With so few images per class the intervals below are wide (accuracy: ${points(width)} points), and one more or one fewer error moves them visibly. ${transfer}`;
  if (minCount < 100)
    return `${start} With a moderate number of images per class, the accuracy interval below spans ${points(width)} points. ${transfer}`;
  return `${start} The accuracy interval below is about ± ${points(width / 2)} points. ${transfer}`;
}

export function modelCard(a: {
  model: ModelRecord;
  head: Head | null;
  fingerprint: string;
  modelSha256: string;
  parity: Parity;
  software: Record<string, string>;
  excluded: number;
  vectors?: TestVectorSummary;
  ops?: string[];
  opset?: number;
}): string {
  const { model } = a;
  const counts = new Map<string, number>();
  for (const t of model.trainingSet) counts.set(t.class, (counts.get(t.class) ?? 0) + 1);
  const est = model.metrics;
  const minCount = Math.min(...[...counts.values()]);
  const limitations = [
    sizeLimitation(model.trainingSet.length, minCount, est),
    'The backbone was pretrained on ImageNet photographs, not on your domain.',
    'Probabilities are calibrated with one temperature fitted on held-out predictions; treat a low top probability as "uncertain" and review those images.',
  ];
  const values = [...counts.values()];
  if (values.length > 1 && Math.max(...values) > 2 * Math.min(...values))
    limitations.push('The classes are imbalanced: read balanced accuracy rather than accuracy.');
  return `# Model card — ${model.name}

**Research use only — not for diagnosis.**

## Intended use
Sorting and triage of images of the kinds it was trained on (${model.classes.join(', ')}), with a person
reviewing uncertain results. Not a medical device.

## Model
- Strategy: ${model.strategy}${isFinetuned(model) ? ' (fine-tuned)' : ' on frozen features'} of \`${model.backboneId}\` (sha256 \`${model.backboneSha256}\`)
- Parameters: ${Object.entries(model.params)
    .filter(([k]) => k !== 'strategy' && k !== 'seed')
    .map(([k, v]) => `${k} = ${formatSetting(k, v)}`)
    .join('; ')}
- 16-bit PNG/TIFF inputs: ${
    modelHighBitDepth(model) === 'percentile'
      ? `each image's ${PERCENTILE_WINDOW.low}–${PERCENTILE_WINDOW.high} percentile range stretched to 0–255 (clipped); apply the same before the model`
      : 'mapped linearly from 0–65535 to 0–255'
  }
- Seed: ${model.seed}
- Exported graph: \`model.onnx\`, sha256 \`${a.modelSha256}\`; input and preprocessing in \`preprocessing.json\`;
  outputs \`probabilities\` and \`logits\` over the classes in \`labels.json\`.
- Software: ${Object.entries(a.software)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}

## Data
| class | training images |
|---|---|
${[...counts.entries()].map(([c, n]) => `| ${c} | ${n} |`).join('\n')}

- Dataset fingerprint (sha256 over the sorted image hashes and labels): \`${a.fingerprint}\`
- Images excluded from training in the project: ${a.excluded}

## Metrics
${est ? `Estimated by ${estimateLabel(est)}, with groups kept whole:\n- Accuracy ${pct(est.accuracy.mean)} (95 % CI ${pct(est.accuracy.ci95[0])}–${pct(est.accuracy.ci95[1])})\n- Balanced accuracy ${pct(est.balancedAccuracy.mean)} (95 % CI ${pct(est.balancedAccuracy.ci95[0])}–${pct(est.balancedAccuracy.ci95[1])})\n- Macro-F1 ${pct(est.macroF1.mean)} (95 % CI ${pct(est.macroF1.ci95[0])}–${pct(est.macroF1.ci95[1])})${est.calibration ? `\n- Calibration: ${calibrationLabel(est.calibration)}` : ''}` : 'No evaluation was stored with this model.'}

## Parity
The exported graph was run through ONNX Runtime on ${a.parity.images} training images: ${a.parity.sameClass} gave the same
class as the app, largest probability difference ${a.parity.maxProbabilityDifference.toExponential(2)} (${a.parity.passed ? 'passed' : 'FAILED'}).

${
  a.vectors
    ? `## Checking your runtime
\`test-vectors/\` holds ${a.vectors.count} training images (\`images/\`), the exact input tensors the app made from
them (\`inputs.npy\`, float32, in the layout of \`preprocessing.json\`), and this graph's \`logits.npy\` and \`probabilities.npy\` for those tensors.
1. Runtime: feed \`inputs.npy\` to \`model.onnx\`; every probability should match \`probabilities.npy\` within
   ${a.vectors.tensorTolerance}. \`python3 test-vectors/check.py\` does this with onnxruntime, or \`--opencv\` with OpenCV's DNN module.
2. Your decoding and resizing: run the images through your own pipeline and compare its tensors with
   \`inputs.npy\` (and its probabilities with \`probabilities.npy\`); a gap here, with step 1 passing, is your pipeline.

The graph uses only these ONNX operators${a.opset ? ` (opset ${a.opset})` : ''}: ${(a.ops ?? []).join(', ')}.

## Test-time augmentation
\`model.onnx\` scores one centre crop. The app can also average each image's probabilities over several views
(the centre crop and its mirror, or the centre and four corner crops each mirrored), with a temperature
fitted on held-out predictions of the same views; \`preprocessing.json\` (\`testTimeAugmentation\`) describes the
views and lists the temperatures this model's batch runs used, so the averaging can be reproduced outside the app.

## Resizing with another library
The app resizes with libvips (bilinear, antialiased; see \`preprocessing.json\`). With Pillow's
\`Image.resize(…, BILINEAR)\` and torchvision's \`CenterCrop\` instead (torchvision's usual transform), the input
crops of the test images differed by ${a.vectors.pil.meanPixelDifference.toFixed(2)} grey levels on average (of 255) and the
probabilities by up to ${a.vectors.pil.maxProbabilityDifference.toFixed(4)}, with ${a.vectors.pil.sameClass} of ${a.vectors.pil.images} images given the same class —
measured at export on these images. Use libvips (e.g. \`pyvips\`, \`sharp\`) to reproduce the app exactly.

`
    : ''
}## Limitations
${limitations.map((l) => `- ${l}`).join('\n')}
`;
}
