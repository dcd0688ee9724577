// How an estimate names where it came from, in words: one function for every face (Train screen, Review,
// CLI, reports, model card), so a hold-out row and a 5-fold row never read as the same kind of figure.

import type { Calibration, EvaluationResult, ModelEstimate, Protocol } from './results.ts';

/** "5-fold CV, n = 361", "leave-one-out CV, n = 40", "hold-out, n = 72", "50 × 5-shot episodes, n = 750". */
export function protocolLabel(protocol: Protocol, n?: number): string {
  let base: string;
  switch (protocol.kind) {
    case 'kfold':
      base = `${protocol.folds}-fold CV`;
      break;
    case 'loo':
      base = 'leave-one-out CV';
      break;
    case 'holdout':
      base = 'hold-out';
      break;
    case 'episodes':
      base = `${protocol.episodes} × ${protocol.ways ? `${protocol.ways}-way ` : ''}${protocol.shots}-shot episodes`;
      break;
  }
  return n === undefined ? base : `${base}, n = ${n}`;
}

/** The label stored with a model's estimate, or one made from its protocol for models stored before it. */
export function estimateLabel(e: ModelEstimate): string {
  return e.label ?? protocolLabel(e.protocol, e.n);
}

/** "ECE 3.1 % (10 bins, n = 72, cross-fitted halves of the hold-out, mean confidence 95.0 %)". */
export function calibrationLabel(c: Calibration): string {
  const how = c.method === 'cross-fitted' ? 'cross-fitted halves of the hold-out' : 'held-out predictions';
  return `ECE ${(c.ece * 100).toFixed(1)} % (${c.bins} bins, n = ${c.n}, ${how}, mean confidence ${(c.meanConfidence * 100).toFixed(1)} %)`;
}

/**
 * Where a Review's figures come from, in one sentence under its model picker (empty while a fine-tuned
 * model's evaluation is not there yet: which of the two it will be is not known before).
 */
export function reviewSourceLabel(
  evaluation: Pick<EvaluationResult, 'source' | 'testPredictions' | 'groupAware'> | undefined,
  finetuned: boolean,
): string {
  const groups = evaluation?.groupAware === false ? '' : ', groups kept whole';
  if (evaluation?.source === 'model-validation')
    return `The model's own predictions on its validation split (${evaluation.testPredictions} images${groups}), held out of its training. The split also chose the epoch (so accuracy may read slightly high) and fitted the temperature (so the calibration error is cross-fitted).`;
  if (finetuned)
    return evaluation
      ? `Figures come from fine-tuning afresh with the model’s settings on each training split, scored on images it did not see${groups}.`
      : '';
  return `Figures come from cross-validation with the model’s settings${groups}.`;
}
