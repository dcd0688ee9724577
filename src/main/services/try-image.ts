// "Try an image": one file through a trained model, with the nearest training images. A file dropped on
// the window arrives as bytes; the host writes it to a temporary folder of its own first, so the job's
// row names a file and never holds the image, and the job removes that folder when it ends.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { TryResult } from '../../shared/results.ts';
import { tryFile } from '../engine/try-image.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { requireModel, withBackbone } from './resources.ts';

/** Dropped files live under folders with this prefix in the system's temporary folder. */
const DROP_PREFIX = 'fewshot-try-';
const MAX_DROP_BYTES = 50 * 1024 * 1024;

function dropFolder(file: string): string | null {
  const dir = path.dirname(path.resolve(file));
  return path.dirname(dir) === path.resolve(os.tmpdir()) && path.basename(dir).startsWith(DROP_PREFIX)
    ? dir
    : null;
}

/** The job's request from the window's input: a file as it is, or dropped bytes written to a file first. */
export function tryRequest(
  project: Project,
  input: { modelId: string; file: string } | { modelId: string; name: string; data: string },
): Request<'try'> {
  const model = requireModel(project, input.modelId);
  if ('file' in input) {
    if (!fs.statSync(input.file, { throwIfNoEntry: false })?.isFile())
      throw new FewShotError('NOT_FOUND', `No file at ${input.file}.`);
    return { modelId: model.id, file: input.file };
  }
  const bytes = Buffer.from(input.data, 'base64');
  if (bytes.length === 0) throw new FewShotError('INVALID_INPUT', `"${input.name}" is empty.`);
  if (bytes.length > MAX_DROP_BYTES)
    throw new FewShotError('INVALID_INPUT', `"${input.name}" is over 50 MB: choose it with Browse… instead.`);
  // The name is shown, never trusted as a path: its base name, with anything unusual replaced.
  const safe =
    path
      .basename(input.name)
      .replace(/[^\w.\- ]/g, '_')
      .slice(-120) || 'image';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DROP_PREFIX));
  const file = path.join(dir, safe);
  fs.writeFileSync(file, bytes);
  return { modelId: model.id, file, name: input.name };
}

export function tryImage(
  project: Project,
  req: Request<'try'>,
  ctx: UseCaseContext = {},
): Promise<TryResult> {
  const model = requireModel(project, req.modelId);
  return runJob(project, 'try', req, ctx, async () => {
    try {
      ctx.progress?.({ phase: 'classifying', done: 0, total: 1 });
      return await withBackbone(model.backboneId, (b) =>
        tryFile(project, model, b, req.file, {
          name: req.name ?? path.basename(req.file),
          ...(req.neighbours !== undefined ? { neighbours: req.neighbours } : {}),
          ...signalOf(ctx),
        }),
      );
    } finally {
      const dir = dropFolder(req.file);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
