// Deleting a trained model, with what refers to it (its batch runs, stored evaluations), in one
// transaction, audited; refused while a job works on it.

import { FewShotError } from '../../shared/errors.ts';
import type { ModelDeleted } from '../../shared/results.ts';
import type { Project } from '../store/project.ts';

export function deleteModel(_project: Project, _modelId: string, _busy: (modelId: string) => boolean): ModelDeleted {
  throw new FewShotError('INTERNAL', 'Deleting a model is not built yet.');
}
