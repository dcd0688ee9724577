// Results the engine returns and the UI shows: evaluation figures with their intervals, trained models,
// batch predictions. Plain data, no behaviour.

export type Strategy = 'prototype' | 'linear';
/** Heads on frozen features, or fine-tuning the last stage or the whole network. */
export type TrainStrategy = Strategy | 'last-stage' | 'full';

export interface Estimate {
  mean: number;
  ci95: [number, number];
  /**
   * wilson: Wilson score interval of one split's proportion; t: Student's t across episodes or folds;
   * bootstrap: seeded percentile bootstrap over test images. Every interval is widened to at least the
   * Wilson interval of the pooled counts (`floored` then true), so a perfect score never reads as
   * [100 %, 100 %].
   */
  method: 'wilson' | 't' | 'bootstrap' | 'none';
  floored?: boolean;
  n: number;
}

export type Protocol =
  | { kind: 'episodes'; shots: number; episodes: number; ways?: number; queries?: number }
  | { kind: 'kfold'; folds: number }
  | { kind: 'loo' }
  | { kind: 'holdout'; testFraction: number };

export interface ClassEstimate {
  class: string;
  precision: Estimate;
  recall: Estimate;
  f1: Estimate;
  support: number;
}

export interface Prediction {
  index: number;
  id?: number;
  truth: number;
  predicted: number;
  probabilities: number[];
}

export interface EvaluationResult {
  strategy: TrainStrategy;
  protocol: Protocol;
  seed: number;
  groupAware: boolean;
  classes: string[];
  ways: number;
  shots: number | null;
  episodes: number | null;
  folds: number | null;
  accuracy: Estimate;
  balancedAccuracy: Estimate;
  macroF1: Estimate;
  rocAucOvr: Estimate | null;
  perClass: ClassEstimate[];
  /** Summed over all test predictions: confusion[true][predicted]. */
  confusion: number[][];
  /** Test predictions pooled over folds (for episodes: at most the last 2,000). */
  predictions: Prediction[];
  testPredictions: number;
}

export interface CurvePoint {
  shots: number;
  episodes: number;
  accuracy: Estimate;
  balancedAccuracy: Estimate;
  macroF1: Estimate;
}

export interface TrainResult {
  modelId: string;
  strategy: TrainStrategy;
  backbone: string;
  classes: string[];
  images: number;
  seed: number;
  params: Record<string, unknown>;
  estimate: Pick<EvaluationResult, 'accuracy' | 'balancedAccuracy' | 'macroF1' | 'protocol'> | null;
  seconds: number;
}

export interface ClassifySummary {
  runId: string;
  resumed: boolean;
  files: number;
  classifiedNow: number;
  alreadyDone: number;
  ok: number;
  uncertain: number;
  errors: number;
  perClass: Record<string, number>;
  imagesPerSecond: number;
  seconds: number;
  csv: string;
}

export interface ModelRecord {
  id: string;
  name: string;
  backboneId: string;
  backboneSha256: string;
  strategy: string;
  params: Record<string, unknown>;
  seed: number;
  classes: string[];
  trainingSet: { id: number; sha256: string; class: string }[];
  metrics: unknown;
  software: Record<string, string>;
  artefactSha256: string | null;
  jobId: string | null;
  createdAt: string;
}

export type PredictionStatus = 'ok' | 'uncertain' | 'error';

export interface PredictionRow {
  relPath: string;
  status: PredictionStatus;
  predicted: string | null;
  confidence: number | null;
  probabilities: number[] | null;
  errorCode: string | null;
  errorMessage: string | null;
}
