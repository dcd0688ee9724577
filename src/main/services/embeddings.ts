// Embeddings export: a project's images (as a job, audited) or a folder's files, each as the backbone's
// feature vector, to a .csv or a .npy. The app and `fewshot embed` both come here.

import fs from 'node:fs';
import path from 'node:path';
import type { EmbeddingsSummary } from '../../shared/embeddings.ts';
import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import {
  checkEmbeddingsOutput,
  exportFolderEmbeddings,
  exportProjectEmbeddings,
  type EmbeddingsOptions,
} from '../engine/features/embeddings.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { withProject } from './projects.ts';
import { withBackbone } from './resources.ts';

/**
 * Checked when the export is asked for (the window's request): an absolute path with a known extension,
 * not over an existing file unless asked, and an installed backbone.
 */
export function checkEmbeddingsRequest(req: Request<'embeddings'>): void {
  if (!path.isAbsolute(req.out))
    throw new FewShotError('INVALID_INPUT', `Give the output file as an absolute path (got "${req.out}").`);
  checkEmbeddingsOutput(req.out, req.force ?? false);
  resolveBackbone(req.backbone);
}

function engineOptions(req: Request<'embeddings'>, ctx: UseCaseContext): EmbeddingsOptions {
  return {
    out: req.out,
    force: req.force ?? false,
    includeExcluded: req.includeExcluded ?? false,
    batchSize: req.batchSize ?? 16,
    ...signalOf(ctx),
    onProgress: (p) => ctx.progress?.(p),
  };
}

function backboneOptions(req: Request<'embeddings'>): { threads?: number; device?: 'auto' | 'cpu' | 'gpu' } {
  return { ...(req.threads ? { threads: req.threads } : {}), ...(req.device ? { device: req.device } : {}) };
}

/** A project's images as feature vectors (the feature cache filled on the way), run as a job. */
export function exportEmbeddings(
  project: Project,
  req: Request<'embeddings'>,
  ctx: UseCaseContext = {},
): Promise<EmbeddingsSummary> {
  return runJob(project, 'embeddings', req, ctx, () =>
    withBackbone(
      req.backbone,
      async (b) => {
        const r = await exportProjectEmbeddings(project, b, engineOptions(req, ctx));
        project.db.transaction(() =>
          project.audit.append('embeddings', {
            backbone: r.backbone,
            backboneSha256: b.sha256,
            format: r.format,
            rows: r.rows,
            dim: r.dim,
            skipped: r.skipped.length,
            includeExcluded: r.includeExcluded,
          }),
        )();
        return r;
      },
      backboneOptions(req),
    ),
  );
}

/** A folder's files (no project): labels from the first-level subfolders, no groups. */
export async function exportFolderEmbeddingsOf(
  folder: string,
  req: Request<'embeddings'>,
  ctx: UseCaseContext = {},
): Promise<EmbeddingsSummary> {
  // What can be refused is refused before the backbone loads.
  if (req.includeExcluded)
    throw new FewShotError('INVALID_INPUT', 'Only a project has excluded images (--include-excluded).');
  checkEmbeddingsOutput(req.out, req.force ?? false);
  return withBackbone(
    req.backbone,
    (b) => exportFolderEmbeddings(folder, b, engineOptions(req, ctx)),
    backboneOptions(req),
  );
}

/** `target` is a project file or a folder of images (the command line's form). */
export async function exportEmbeddingsFrom(
  target: string,
  req: Request<'embeddings'>,
  ctx: UseCaseContext = {},
): Promise<EmbeddingsSummary> {
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (!st) throw new FewShotError('NOT_FOUND', `No project or folder at ${target}.`);
  if (st.isDirectory()) return exportFolderEmbeddingsOf(target, req, ctx);
  // The output is checked before the project is opened (and its integrity checked).
  checkEmbeddingsOutput(req.out, req.force ?? false);
  return withProject(target, (p) => exportEmbeddings(p, req, ctx));
}
