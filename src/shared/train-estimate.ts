// How long a fine-tuning run will take, from one training step and one batch of the frozen layers measured
// on this machine: the Train screen recomputes it as the epochs change, the engine measures it once.

export interface TrainMeasurement {
  backbone: string;
  strategy: string;
  /** What the strategy retrains in this backbone ("layer4", "every layer"). */
  trained: string;
  /** The device in words, as the run will use it, and why when it is not the one asked for. */
  device: string;
  deviceNote: string | null;
  /** Nodes of the training step that ran on the CPU although a GPU was asked for. */
  cpuNodes: number | null;
  /** Seconds of one optimisation step of `batchSize` images, measured (after a warm-up step). */
  stepSeconds: number;
  /** Seconds per image and view through decoding, augmentation and the frozen layers. */
  prefixSecondsPerImage: number;
  batchSize: number;
  views: number;
  /** The run's plan: training images per run, validation images, and runs (3 folds choosing the epochs + 1). */
  plan: {
    trainImages: number;
    perEpoch: number;
    validationImages: number;
    runs: number;
    foldImages: number;
    foldPerEpoch: number;
  };
}

export interface TrainEstimate extends TrainMeasurement {
  epochs: number;
  steps: number;
  seconds: { prefix: number; training: number; total: number };
}

/** The whole run's duration for `epochs`, from a measurement. */
export function estimateRun(m: TrainMeasurement, epochs: number): TrainEstimate {
  const stepsOf = (perEpoch: number): number => epochs * Math.ceil(perEpoch / m.batchSize);
  const folds = m.plan.runs - 1;
  const steps = stepsOf(m.plan.perEpoch) + folds * stepsOf(m.plan.foldPerEpoch);
  const prefixImages =
    m.plan.trainImages * m.views +
    m.plan.validationImages +
    folds * (m.plan.foldImages * m.views + (m.plan.trainImages - m.plan.foldImages));
  // Each epoch with a validation split also runs it forward once (about a third of a step per batch).
  const validationBatches = epochs * Math.ceil(m.plan.validationImages / m.batchSize) * (folds > 0 ? 0 : 1);
  const foldValidation = folds * epochs * Math.ceil((m.plan.trainImages - m.plan.foldImages) / m.batchSize);
  const training = (steps + (validationBatches + foldValidation) / 3) * m.stepSeconds;
  const prefix = prefixImages * m.prefixSecondsPerImage;
  return { ...m, epochs, steps, seconds: { prefix, training, total: prefix + training } };
}

/** "about 4 min", "about 40 s". */
export function durationLabel(seconds: number): string {
  if (seconds < 90) return `about ${Math.max(1, Math.round(seconds / 5) * 5)} s`;
  if (seconds < 5400) return `about ${Math.round(seconds / 60)} min`;
  return `about ${(seconds / 3600).toFixed(1)} h`;
}
