// A trained model's stored Review, keyed by the model, the protocol and the project's data: Review and
// the report reuse one evaluation until the data or the protocol changes.

import type { EvaluationResult, ModelRecord, Protocol, ReviewData } from '../../shared/results.ts';
import type { TtaKind } from '../../shared/tta.ts';
import { projectFingerprint } from '../engine/data-fingerprint.ts';
import { rocFor } from '../engine/review.ts';
import type { EvaluationKey } from '../store/evaluations-repo.ts';
import type { Project } from '../store/project.ts';
import { requireModel } from './resources.ts';

export type StoredReview = Omit<ReviewData, 'model'>;

export function reviewKey(
  project: Project,
  model: ModelRecord,
  protocol?: Protocol,
  groupAware = true,
  tta: TtaKind = 'none',
  dataFingerprint = projectFingerprint(project),
): EvaluationKey {
  // Without a protocol the model's default (chosen from the data) applies: the fingerprint covers it.
  const p = protocol ?? 'default';
  return {
    modelId: model.id,
    protocol: tta === 'none' ? p : { protocol: p, tta },
    seed: model.seed,
    groupAware,
    dataFingerprint,
  };
}

/**
 * A fine-tuned model's own predictions on its validation split, stored as its Review (the protocol Review
 * asks for by default) for the data the run read, `dataFingerprint` taken when it started: labels edited
 * during the run make it a miss, not a stale hit. Review and the report then show the model itself, at no
 * cost. Nothing depends on it: without it Review fine-tunes afresh, so a failure to store it only says so.
 */
export function storeModelValidation(
  project: Project,
  modelId: string,
  evaluation: EvaluationResult,
  jobId: string | null,
  dataFingerprint: string,
): void {
  try {
    const model = requireModel(project, modelId);
    const stored: StoredReview = { evaluation, curve: [], roc: rocFor(evaluation) };
    project.evaluations.put(
      reviewKey(project, model, undefined, true, 'none', dataFingerprint),
      stored,
      jobId,
    );
  } catch (e) {
    console.warn(
      `The Review of model ${modelId} was not stored (${(e as Error).message}); Review will compute it.`,
    );
  }
}

/** The stored review of a model for the project's current data, or null when it must be computed. */
export function storedReview(
  project: Project,
  modelId: string,
  protocol?: Protocol,
  groupAware = true,
  tta: TtaKind = 'none',
): ReviewData | null {
  const model = requireModel(project, modelId);
  const hit = project.evaluations.get<StoredReview>(reviewKey(project, model, protocol, groupAware, tta));
  return hit ? { model, ...hit.result } : null;
}
