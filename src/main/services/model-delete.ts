// Deleting a trained model, with what refers to it (its batch runs, stored evaluations), in one
// transaction, audited; refused while a job works on it.

import { FewShotError } from '../../shared/errors.ts';
import type { ModelDeleted } from '../../shared/results.ts';
import type { Project } from '../store/project.ts';
import { requireModel } from './resources.ts';

/**
 * Deletes the model `idOrPrefix` names, its batch runs with their predictions and its stored evaluations.
 * Files written outside the project (result CSVs, sorted folders, reports, exported bundles) are left where
 * they are: they may already be someone's records. The audit entry lists the ones the batch runs wrote.
 */
export function deleteModel(
  project: Project,
  idOrPrefix: string,
  busy: (modelId: string) => boolean,
): ModelDeleted {
  const model = requireModel(project, idOrPrefix);
  if (busy(model.id))
    throw new FewShotError(
      'INVALID_INPUT',
      `A job is using the model "${model.name}" now. Wait for it to finish, or cancel it, then delete the model.`,
    );
  return project.db.transaction((): ModelDeleted => {
    const runs = project.batches.ofModel(model.id);
    const batches = project.batches.deleteOfModel(model.id);
    const evaluations = project.evaluations.deleteOfModel(model.id);
    if (!project.models.delete(model.id))
      throw new FewShotError('NOT_FOUND', `The model "${model.name}" was deleted already.`);
    project.audit.append('model-delete', {
      modelId: model.id,
      name: model.name,
      strategy: model.strategy,
      backbone: model.backboneId,
      backboneSha256: model.backboneSha256,
      artefactSha256: model.artefactSha256,
      batchRuns: batches.runs,
      predictions: batches.predictions,
      evaluations,
      filesKept: runs.flatMap((r) =>
        [r.params.out, r.params.sortInto].filter((f): f is string => typeof f === 'string'),
      ),
    });
    return { modelId: model.id, name: model.name, batchRuns: batches.runs, evaluations };
  })();
}
