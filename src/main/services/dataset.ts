// The project's images: import, what is in the data set, relabel and exclude (audited), thumbnails,
// augmentation previews from the training code, features and the data-set checks.

import fs from 'node:fs';
import path from 'node:path';
import type { AugmentSpec } from '../../shared/augment.ts';
import type { DatasetSummary, ImageItem } from '../../shared/contract.ts';
import type { FeatureSummary, ImportSummary, RejectCode } from '../../shared/domain.ts';
import { FewShotError } from '../../shared/errors.ts';
import type { Request } from '../../shared/requests.ts';
import type { DatasetWarning } from '../../shared/results.ts';
import { augmentPreview } from '../engine/augment/augment.ts';
import { writeFileAtomic } from '../engine/atomic-file.ts';
import { loadDataset } from '../engine/classify/dataset.ts';
import { datasetWarnings } from '../engine/dataset-warnings.ts';
import { computeFeatures, type FeatureRunResult } from '../engine/features/project-features.ts';
import { DEFAULT_LIMITS, decoder } from '../engine/image/decode.ts';
import { windowed } from '../engine/image/windowing.ts';
import { importFolder } from '../engine/import/import-folder.ts';
import type { ImageFilter, ImageRecord } from '../store/images-repo.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { withBackbone } from './resources.ts';

/** Checked when the import is asked for, so a wrong path is an answer, not a failed job. */
export function checkImportRequest(req: Request<'import'>): void {
  const st = fs.statSync(req.folder, { throwIfNoEntry: false });
  if (!st) throw new FewShotError('NOT_FOUND', `No folder at ${req.folder}.`);
  if (!st.isDirectory()) throw new FewShotError('INVALID_INPUT', `${req.folder} is not a folder.`);
  if (req.groupsCsv && !fs.statSync(req.groupsCsv, { throwIfNoEntry: false })?.isFile())
    throw new FewShotError('NOT_FOUND', `No groups file at ${req.groupsCsv}.`);
}

export function importImages(
  project: Project,
  req: Request<'import'>,
  ctx: UseCaseContext = {},
): Promise<ImportSummary> {
  return runJob(project, 'import', { folder: req.folder, groups: req.groupsCsv ?? null }, ctx, (jobId) =>
    importFolder(project, req.folder, {
      jobId,
      ...(req.groupsCsv ? { groupsCsv: req.groupsCsv } : {}),
      ...(req.groupColumn ? { groupColumn: req.groupColumn } : {}),
      ...(req.frames ? { frames: req.frames } : {}),
      limits: { ...DEFAULT_LIMITS, ...(req.maxPixels ? { maxPixels: req.maxPixels } : {}) },
      ...signalOf(ctx),
      onProgress: (e) => {
        if (e.phase === 'importing')
          ctx.progress?.({
            phase: 'importing',
            done: e.processed,
            total: Math.max(e.filesSeen, e.processed),
            message: `${e.added} added, ${e.rejected} rejected`,
          });
      },
    }),
  );
}

export function datasetSummary(p: Project): DatasetSummary {
  return {
    total: p.images.count(),
    unlabelled: p.images.page({ className: null }, 0, 1).total,
    excluded: p.images.page({ excluded: true }, 0, 1).total,
    groups: p.images.groupCount(),
    classes: p.images.classes().map((c) => ({ name: c.name, images: c.images, excluded: c.excluded })),
    rejections: p.images
      .lastRejections()
      .map((r) => ({ path: r.relPath, code: r.code as RejectCode, message: r.message })),
  };
}

function toItem(i: ImageRecord): ImageItem {
  return {
    id: i.id,
    relPath: i.relPath,
    className: i.className,
    groupKey: i.groupKey,
    excluded: i.excluded,
    width: i.width,
    height: i.height,
  };
}

export function imagesPage(
  p: Project,
  filter: ImageFilter,
  offset: number,
  limit: number,
): { total: number; images: ImageItem[] } {
  const r = p.images.page(filter, offset, limit);
  return { total: r.total, images: r.images.map(toItem) };
}

/** Every id the filter selects, in page order (select all across pages). */
export function imageIds(p: Project, filter: ImageFilter): { ids: number[] } {
  return { ids: p.images.ids(filter) };
}

/** Relabels images, or returns them to unlabelled (`className` null: an undo of a first label). */
export function relabelImages(p: Project, imageIds: number[], className: string | null): { updated: number } {
  const updated = p.db.transaction(() => {
    const n = p.images.relabel(imageIds, className);
    p.audit.append(className === null ? 'unlabel' : 'relabel', { imageIds, to: className, updated: n });
    return n;
  })();
  return { updated };
}

export function excludeImages(p: Project, imageIds: number[], excluded: boolean): { updated: number } {
  const updated = p.db.transaction(() => {
    const n = p.images.setExcluded(imageIds, excluded);
    p.audit.append(excluded ? 'exclude' : 'include', { imageIds, updated: n });
    return n;
  })();
  return { updated };
}

/** An image by id, or by its path relative to the import folder (the command line's way). */
export function findImage(p: Project, ref: number | string): { image: ImageRecord; bytes: Buffer } {
  const image =
    typeof ref === 'number' || /^\d+$/.test(ref)
      ? p.images.get(Number(ref))
      : (p.images.list({ includeExcluded: true }).find((i) => i.relPath === ref) ?? null);
  const bytes = image ? p.images.bytes(image.sha256) : null;
  if (!image || !bytes)
    throw new FewShotError(
      'NOT_FOUND',
      typeof ref === 'number'
        ? `No image ${ref}.`
        : `No image "${ref}" in the project (give its id or its path relative to the import folder).`,
    );
  return { image, bytes };
}

/** A thumbnail (JPEG, no metadata) of a project image, longest side `size`, under the 16-bit policy. */
export async function thumbnail(p: Project, imageId: number, size: number): Promise<Buffer> {
  const { bytes } = findImage(p, imageId);
  return decoder(await windowed(bytes, p.highBitDepth()))
    .resize(size, size, { fit: 'inside', withoutEnlargement: false })
    .jpeg({ quality: 82 })
    .toBuffer();
}

/**
 * `n` augmented variants as PNGs, by the training code and from the pixels training sees (the project's
 * 16-bit policy first).
 */
export async function previewAugmentation(
  p: Project,
  image: number | string,
  spec: AugmentSpec,
  n: number,
  seed: number,
): Promise<Buffer[]> {
  const { bytes } = findImage(p, image);
  return augmentPreview(await windowed(bytes, p.highBitDepth()), spec, n, seed, {
    width: 224,
    height: 224,
    resizeShorter: 256,
  });
}

/** The preview written as `variant-NN.png` files into a folder (the command line's form of it). */
export async function writeAugmentationPreview(
  p: Project,
  image: number | string,
  spec: AugmentSpec,
  n: number,
  seed: number,
  outDir: string,
): Promise<{ files: string[] }> {
  const pngs = await previewAugmentation(p, image, spec, n, seed);
  const files = pngs.map(
    (png, i) => writeFileAtomic(path.join(outDir, `variant-${String(i + 1).padStart(2, '0')}.png`), png).out,
  );
  return { files };
}

export function computeProjectFeatures(
  project: Project,
  req: Request<'features'>,
  ctx: UseCaseContext = {},
): Promise<FeatureSummary & { errors: FeatureRunResult['errors'] }> {
  return runJob(project, 'features', req, ctx, () =>
    withBackbone(
      req.backbone,
      (b) =>
        computeFeatures(project, b, {
          batchSize: req.batchSize ?? 16,
          ...signalOf(ctx),
          onProgress: (e) => ctx.progress?.({ phase: 'features', done: e.done, total: e.total }),
        }),
      { ...(req.threads ? { threads: req.threads } : {}), ...(req.device ? { device: req.device } : {}) },
    ),
  );
}

/** Missing groups, near-duplicates (and conflicting labels among them), tiny and skewed classes. */
export function checkDataset(
  project: Project,
  req: Request<'checks'>,
  ctx: UseCaseContext = {},
): Promise<{ warnings: DatasetWarning[] }> {
  return runJob(project, 'checks', req, ctx, () =>
    withBackbone(req.backbone, async (b) => {
      const data = await loadDataset(project, b, {
        ...signalOf(ctx),
        onProgress: (e) => ctx.progress?.({ phase: 'features', done: e.done, total: e.total }),
      });
      ctx.progress?.({ phase: 'comparing images', done: 0, total: 1 });
      return { warnings: await datasetWarnings(project, data) };
    }),
  );
}
