// "Try an image": one file through a trained model, with the nearest training images.

import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { TryResult } from '../../shared/results.ts';
import type { Project } from '../store/project.ts';
import type { UseCaseContext } from './context.ts';

export function tryImage(_project: Project, _req: Request<'try'>, _ctx: UseCaseContext = {}): Promise<TryResult> {
  return Promise.reject(new FewShotError('INTERNAL', 'Trying an image is not built yet.'));
}

/**
 * The job's request from the window's input: a file on this machine as it is, or dropped bytes written
 * to a temporary file first (the job's row then names that file, never holds the bytes).
 */
export function tryRequest(
  _project: Project,
  _input: { modelId: string; file: string } | { modelId: string; name: string; data: string },
): Request<'try'> {
  throw new FewShotError('INTERNAL', 'Trying an image is not built yet.');
}
