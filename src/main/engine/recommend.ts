// The strategy for the data at hand (the literature's rule of thumb): ≤ 5 images per class → a head on
// frozen features (prototype below 3); 5–20 → fine-tune the last stage; more → the last stage, or the
// whole network when the images are far from ImageNet photographs (microscopy, radiology).

import type { BackboneInfo } from '../../shared/backbones.ts';
import type { Recommendation } from '../../shared/contract.ts';

/** Architectures whose last stage the fine-tuning engine can cut out and retrain. */
export function supportsPartialFinetune(architecture: string): boolean {
  return (
    architecture === 'resnet18' ||
    architecture.startsWith('squeezenet') ||
    architecture.startsWith('mobilenet_v2')
  );
}

/** `imagesPerClass`: usable (labelled, included) images of each class. */
export function recommend(imagesPerClass: number[], backbones: BackboneInfo[]): Recommendation {
  const counts = imagesPerClass.filter((n) => n > 0);
  const sorted = [...counts].sort((a, b) => a - b);
  const minShots = sorted[0] ?? 0;
  const medianShots = sorted.length ? (sorted[Math.floor((sorted.length - 1) / 2)] as number) : 0;
  const partial = backbones.some((b) => b.present && b.supported && supportsPartialFinetune(b.architecture));
  let strategy: Recommendation['strategy'];
  let reason: string;
  if (minShots < 3) {
    strategy = 'prototype';
    reason = `The smallest class has ${minShots} image${minShots === 1 ? '' : 's'}: with 1–2 images per class a class mean is steadier than anything fitted.`;
  } else if (minShots <= 5 || !partial) {
    strategy = 'linear';
    reason = `The smallest class has ${minShots} images: too few to change the network itself; a linear head on its features is the safe choice${partial ? '' : ' (partial fine-tuning needs a ResNet18, SqueezeNet or MobileNetV2 backbone)'}.`;
  } else if (minShots <= 20) {
    strategy = 'last-stage';
    reason = `The smallest class has ${minShots} images: enough to adapt the last stage of the network to your images, while the earlier layers stay as pretrained.`;
  } else {
    strategy = 'last-stage';
    reason = `Every class has more than 20 images: adapt the last stage; if your images are far from everyday photographs (microscopy, radiology), try a full fine-tune and compare the two on the Review screen.`;
  }
  return {
    strategy,
    reason,
    minShots,
    medianShots,
    options: [
      {
        strategy: 'prototype',
        label: 'Prototype (nearest class mean)',
        available: true,
        note: 'Works from one image per class; nothing to tune.',
      },
      {
        strategy: 'linear',
        label: 'Frozen backbone + linear head',
        available: true,
        note: 'Logistic regression on the features; weight decay tuned by cross-validation.',
      },
      {
        strategy: 'last-stage',
        label: 'Partial unfreeze: the last stage',
        available: partial,
        note: partial
          ? 'Retrains the last stage and a new head with augmentation; the rest stays frozen.'
          : 'Needs a ResNet18, SqueezeNet or MobileNetV2 backbone.',
      },
      {
        strategy: 'last-two-stages',
        label: 'Partial unfreeze: the last two stages',
        available: partial,
        note: partial
          ? 'The tutorials\' "unfreeze the last two residual blocks": more of the network adapts; needs more images than the last stage alone.'
          : 'Needs a ResNet18, SqueezeNet or MobileNetV2 backbone.',
      },
      {
        strategy: 'full',
        label: 'Full fine-tune',
        available: true,
        note: 'Retrains every layer: slow on a CPU, best far from ImageNet with more than 20 images per class.',
      },
    ],
  };
}
