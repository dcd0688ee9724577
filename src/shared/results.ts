// Results the engine returns and the UI shows: evaluation figures with their intervals, trained models,
// batch predictions. Plain data, no behaviour.

import type { FrozenStrategy, TrainStrategy } from './strategies.ts';
import type { RunTta, TtaKind } from './tta.ts';

export type { TrainStrategy };
/** A head on frozen features. */
export type Strategy = FrozenStrategy;

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
  /** ECE of all test predictions (absent in evaluations stored before it was recorded). */
  calibration?: Calibration;
  /**
   * Test-time augmentation: each test image's probabilities averaged over its views, with a temperature
   * fitted on held-out raw logits of the same views (each block of splits scored with a temperature
   * fitted on the other blocks). Absent: single view.
   */
  tta?: { kind: TtaKind; views: number; temperature: number };
  /**
   * `model-validation`: the trained model's own predictions on its validation split, held out of its
   * training (the split also chose its epoch and fitted its temperature, so `calibration` is cross-fitted).
   * Absent: every split's model fitted afresh without its test images.
   */
  source?: 'model-validation';
}

export interface CurvePoint {
  shots: number;
  episodes: number;
  accuracy: Estimate;
  balancedAccuracy: Estimate;
  macroF1: Estimate;
}

/** One equal-width bin of the top probability; confidence and accuracy are null when it is empty. */
export interface CalibrationBin {
  lo: number;
  hi: number;
  count: number;
  confidence: number | null;
  accuracy: number | null;
}

/** How far confidences are from the accuracy they claim, on predictions the model did not train on. */
export interface Calibration {
  /** Expected calibration error: Σ (count / n) · |accuracy − mean confidence| over the bins. */
  ece: number;
  n: number;
  /** Number of equal-width bins of the top probability. */
  bins: number;
  meanConfidence: number;
  accuracy: number;
  table: CalibrationBin[];
  /**
   * held-out: every prediction comes from a model, and a temperature, fitted without that image
   * (cross-validation folds, episodes); cross-fitted: one hold-out set both fitted the temperature and is
   * scored, so it is halved: the temperature fitted on each half rescales the other half.
   */
  method: 'held-out' | 'cross-fitted';
}

/**
 * The accuracy estimate stored with a model, naming the protocol it came from. `n`, `label` and
 * `calibration` are absent in models stored before they were recorded.
 */
export type ModelEstimate = Pick<
  EvaluationResult,
  'accuracy' | 'balancedAccuracy' | 'macroF1' | 'protocol'
> & {
  /** Test predictions behind the figures. */
  n?: number;
  /** protocolLabel(protocol, n): "5-fold CV, n = 361", "hold-out, n = 72". */
  label?: string;
  calibration?: Calibration;
};

export interface TrainResult {
  modelId: string;
  strategy: TrainStrategy;
  backbone: string;
  classes: string[];
  images: number;
  seed: number;
  params: Record<string, unknown>;
  estimate: ModelEstimate | null;
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
  /**
   * Files classified now that are byte-identical to the model's own training images (their predictions
   * say nothing about how it does on new data), with up to ten of their paths.
   */
  inTraining?: { files: number; examples: string[] };
}

export interface ModelRecord {
  id: string;
  name: string;
  backboneId: string;
  backboneSha256: string;
  strategy: TrainStrategy;
  params: Record<string, unknown>;
  seed: number;
  classes: string[];
  trainingSet: { id: number; sha256: string; class: string }[];
  metrics: ModelEstimate | null;
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

/** Everything the Review screen and the evaluation report show for a model. */
export interface ReviewData {
  model: ModelRecord;
  evaluation: EvaluationResult;
  /** The same evaluation with test-time augmentation, when it was asked for (frozen-feature models). */
  ttaEvaluation?: EvaluationResult;
  curve: CurvePoint[];
  /** Two classes only: the ROC curve of the second class against the first. */
  roc: { fpr: number; tpr: number }[] | null;
}

export interface ReportResult {
  out: string;
  bytes: number;
}

export interface ExportSummary {
  dir: string;
  files: string[];
  modelSha256: string;
  parity: { images: number; sameClass: number; maxProbabilityDifference: number; passed: boolean };
}

export interface DatasetWarning {
  kind: 'no-groups' | 'near-duplicate' | 'label-conflict' | 'small-class' | 'imbalance';
  message: string;
  imageIds: number[];
}

export interface CurveResult {
  strategy: Strategy;
  backbone: string;
  points: CurvePoint[];
}

/** A past batch run with its counts, for the Batch screen's list. */
export interface BatchRunView {
  id: string;
  modelId: string;
  /** The classified folder's name (not its path). */
  folder: string;
  createdAt: string;
  status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'unknown';
  files: number;
  ok: number;
  uncertain: number;
  errors: number;
  perClass: Record<string, number>;
  csv: string | null;
  minConfidence: number | null;
  /** Test-time augmentation of the run (null: single view). */
  tta: RunTta | null;
}

/** A training image close to a tried one, in the model's feature space. */
export interface Neighbour {
  imageId: number;
  relPath: string;
  className: string;
  /** Cosine similarity of the two feature vectors, −1 … 1. */
  similarity: number;
}

/** "Try an image": one file through a model. */
export interface TryResult {
  modelId: string;
  name: string;
  classes: string[];
  probabilities: number[];
  predicted: string;
  confidence: number;
  /** Below the confidence a batch run sends to `_uncertain` by default. */
  uncertain: boolean;
  neighbours: Neighbour[];
  /** Which features the neighbours were found by, in a sentence. */
  neighboursBy: string;
}

/** A class suggested for an unlabelled image. */
export interface LabelSuggestion {
  imageId: number;
  relPath: string;
  predicted: string;
  confidence: number;
  probabilities: number[];
  /** Top probability minus the second: small is uncertain, where a label teaches the model most. */
  margin: number;
}

export interface SuggestResult {
  modelId: string;
  classes: string[];
  /** Unlabelled, not excluded images considered. */
  unlabelled: number;
  /** Most uncertain first. */
  suggestions: LabelSuggestion[];
  failed: { imageId: number; relPath: string; code: string; message: string }[];
}

/** What deleting a model removed with it. */
export interface ModelDeleted {
  modelId: string;
  name: string;
  batchRuns: number;
  evaluations: number;
}
