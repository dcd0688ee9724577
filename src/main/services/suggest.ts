// Suggested classes for the unlabelled images, most uncertain first (where a label teaches most).

import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { SuggestResult } from '../../shared/results.ts';
import type { Project } from '../store/project.ts';
import type { UseCaseContext } from './context.ts';

export function suggestLabels(
  _project: Project,
  _req: Request<'suggest'>,
  _ctx: UseCaseContext = {},
): Promise<SuggestResult> {
  return Promise.reject(new FewShotError('INTERNAL', 'Label suggestions are not built yet.'));
}
