// The training strategies, written once: heads on frozen backbone features, or fine-tuning part or all
// of the network. The engine, host, CLI and renderer all read them from here.

export const FROZEN_STRATEGIES = ['prototype', 'linear'] as const;
export const FINETUNE_STRATEGIES = ['last-stage', 'last-two-stages', 'full'] as const;
export const TRAIN_STRATEGIES = [...FROZEN_STRATEGIES, ...FINETUNE_STRATEGIES] as const;

/** A head fitted on frozen features. */
export type FrozenStrategy = (typeof FROZEN_STRATEGIES)[number];
/** Part or all of the backbone retrained, with a new head. */
export type FinetuneStrategy = (typeof FINETUNE_STRATEGIES)[number];
export type TrainStrategy = FrozenStrategy | FinetuneStrategy;

/** Whether a strategy, or a model trained with it, changes the backbone: the one test for "fine-tuned". */
export function isFinetuned(strategy: string): strategy is FinetuneStrategy;
export function isFinetuned(model: { strategy: string }): boolean;
export function isFinetuned(s: string | { strategy: string }): boolean {
  return (FINETUNE_STRATEGIES as readonly string[]).includes(typeof s === 'string' ? s : s.strategy);
}

export function isTrainStrategy(s: string): s is TrainStrategy {
  return (TRAIN_STRATEGIES as readonly string[]).includes(s);
}

/** What the partial strategies retrain in an architecture, in its own names: [last stage, last two stages]. */
export function partNames(architecture: string): [string, string] | null {
  if (/^resnet(18|34|50|101|152)$/.test(architecture)) return ['layer4', 'layer3 + layer4'];
  if (architecture.startsWith('squeezenet')) return ['fire9', 'fire8 + fire9'];
  if (architecture.startsWith('mobilenet_v2')) return ['block 16', 'blocks 13–16'];
  return null;
}

/** A strategy's part of this architecture in words: "layer4", "every layer", or null when undefined for it. */
export function partOf(architecture: string, strategy: TrainStrategy): string | null {
  if (strategy === 'full') return 'every layer';
  if (strategy === 'prototype' || strategy === 'linear') return null;
  const n = partNames(architecture);
  return n ? (strategy === 'last-stage' ? n[0] : n[1]) : null;
}
