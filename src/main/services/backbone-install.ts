// Adding a backbone from the window: the file is checked at once (a wrong path is an answer, not a
// failed job), then installed as a job, since converting and checking a network takes seconds. The work
// itself is addBackbone's, the same as `fewshot models add`.

import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';
import type { BackboneAdded } from '../../shared/jobs.ts';
import type { Request } from '../../shared/requests.ts';
import { addBackbone } from './backbones.ts';
import { throwIfCancelled, type UseCaseContext } from './context.ts';

export function checkBackboneFile(req: Request<'backbone-add'>): void {
  if (!path.isAbsolute(req.file))
    throw new FewShotError('INVALID_INPUT', `"${req.file}" is not an absolute path to a backbone file.`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(req.file);
  } catch {
    throw new FewShotError('NOT_FOUND', `No file at ${req.file}.`);
  }
  if (stat.isDirectory())
    throw new FewShotError(
      'INVALID_INPUT',
      `${req.file} is a folder; choose the backbone file in it (a .pth, an .onnx or a model.json).`,
    );
}

export async function installBackbone(
  req: Request<'backbone-add'>,
  ctx: UseCaseContext = {},
): Promise<BackboneAdded> {
  checkBackboneFile(req);
  throwIfCancelled(ctx, 'Adding the backbone');
  const report = (step: string, fraction: number): void =>
    ctx.progress?.({ phase: step, done: Math.round(fraction * 100), total: 100 });
  report('Reading', 0);
  const entry = await addBackbone(req.file, {
    ...(req.id ? { id: req.id } : {}),
    ...(req.preset ? { preset: req.preset } : {}),
    onProgress: report,
  });
  report('Installed', 1);
  return { id: entry.id, architecture: entry.architecture, featureDim: entry.output.dim };
}
