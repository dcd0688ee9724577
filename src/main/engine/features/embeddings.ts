// Embeddings export: each image's feature vector — the one the heads train on, from the same pipeline
// (decode, crop, normalise, the backbone cut at its pooled features) and, for a project, the same feature
// cache — as CSV or .npy. An image that cannot be decoded is left out and reported; the export goes on.

import fs from 'node:fs';
import path from 'node:path';
import type { EmbeddingsSummary, SkippedImage } from '../../../shared/embeddings.ts';
import { FewShotError } from '../../../shared/errors.ts';
import type { ImageRecord } from '../../store/images-repo.ts';
import type { Project } from '../../store/project.ts';
import { isTemporaryOf } from '../atomic-file.ts';
import type { Backbone } from '../backbones/backbone.ts';
import { readFileTyped } from '../batch/classify-folder.ts';
import {
  assertOutputFree,
  embeddingOutput,
  writeEmbeddings,
  type EmbeddingOutput,
  type EmbeddingRow,
} from '../export/embedding-files.ts';
import { DEFAULT_LIMITS } from '../image/decode.ts';
import { DecodePool } from '../image/decode-pool.ts';
import { scanFolder } from '../import/scan.ts';
import { embedAll, type PipelineItem } from './pipeline.ts';
import { computeFeatures } from './project-features.ts';

export interface EmbeddingsOptions {
  /** The .csv or .npy to write. */
  out: string;
  /** Overwrite files that exist (else ALREADY_EXISTS). */
  force?: boolean;
  /** Keep a project's excluded images, with an `excluded` column. */
  includeExcluded?: boolean;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
  /** Decode processes for a folder's files; by default the export starts its own and stops them. */
  decodePool?: DecodePool;
}

/** The output's files, checked before any image is read: a wrong path is an answer, not an hour lost. */
export function checkEmbeddingsOutput(out: string, force = false): EmbeddingOutput {
  const output = embeddingOutput(out);
  assertOutputFree(output, force);
  return output;
}

function summary(
  backbone: Backbone,
  output: EmbeddingOutput,
  rows: number,
  dim: number,
  rest: Pick<EmbeddingsSummary, 'includeExcluded' | 'skipped' | 'fromCache' | 'computed'>,
  started: number,
): EmbeddingsSummary {
  return {
    backbone: backbone.id,
    format: output.format,
    out: output.out,
    rowsFile: output.rowsFile,
    rows,
    dim,
    ...rest,
    device: backbone.session.deviceLabel,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * A project's images (included ones unless `includeExcluded`), each labelled with its current class and
 * group, path relative to its import root; vectors computed where the cache lacks them, stored there too.
 */
export async function exportProjectEmbeddings(
  project: Project,
  backbone: Backbone,
  options: EmbeddingsOptions,
): Promise<EmbeddingsSummary> {
  const started = performance.now();
  const output = checkEmbeddingsOutput(options.out, options.force);
  const includeExcluded = options.includeExcluded ?? false;
  const images = project.images.list({ includeExcluded });
  if (images.length === 0)
    throw new FewShotError(
      'INVALID_INPUT',
      project.images.count() > 0
        ? 'Every image of the project is excluded (--include-excluded keeps them).'
        : 'The project has no images to export.',
    );
  const run = await computeFeatures(project, backbone, {
    images,
    batchSize: options.batchSize ?? 16,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (e) => options.onProgress?.({ phase: 'features', done: e.done, total: e.total }),
  });
  const failed = new Map(run.errors.map((e) => [e.imageId, e.error]));
  const view = project.featureView();
  const kept: ImageRecord[] = [];
  const skipped: SkippedImage[] = [];
  for (const img of images) {
    if (project.features.has(img.sha256, backbone.id, view)) kept.push(img);
    else
      skipped.push({
        path: img.relPath,
        ...(failed.get(img.id) ?? { code: 'INTERNAL', message: 'No features were stored for it.' }),
      });
  }
  if (kept.length === 0) throw nothingDecoded(skipped);
  const vectorAt = (i: number): Float32Array => {
    const v = project.features.get((kept[i] as ImageRecord).sha256, backbone.id, view);
    if (!v) throw new FewShotError('INTERNAL', `The features of ${kept[i]?.relPath} left the cache.`);
    return v;
  };
  const dim = vectorAt(0).length;
  const rows: EmbeddingRow[] = kept.map((img) => ({
    path: img.relPath,
    label: img.className,
    group: img.groupKey,
    excluded: img.excluded,
  }));
  writeEmbeddings(output, rows, vectorAt, dim, {
    includeExcluded,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (done, total) => options.onProgress?.({ phase: 'writing', done, total }),
  });
  return summary(
    backbone,
    output,
    rows.length,
    dim,
    { includeExcluded, skipped, fromCache: run.fromCache, computed: run.computed },
    started,
  );
}

function nothingDecoded(skipped: SkippedImage[]): FewShotError {
  const first = skipped[0];
  return new FewShotError(
    'INVALID_INPUT',
    `None of the ${skipped.length} images could be read${first ? ` (${first.path}: ${first.code}: ${first.message})` : ''}; nothing was written.`,
  );
}

interface FolderItem {
  index: number;
  rel: string;
  label: string | null;
}

/**
 * Every file under `folder`, labelled by its first-level subfolder (none at the top level), path relative
 * to `folder`. The files are untrusted: they are decoded in decode processes, as batch classification
 * does, so a file that crashes a decoder is one skipped image.
 */
export async function exportFolderEmbeddings(
  folder: string,
  backbone: Backbone,
  options: EmbeddingsOptions,
): Promise<EmbeddingsSummary> {
  const started = performance.now();
  const root = path.resolve(folder);
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory())
    throw new FewShotError('NOT_FOUND', `No folder at ${folder}.`);
  if (options.includeExcluded)
    throw new FewShotError('INVALID_INPUT', 'Only a project has excluded images (--include-excluded).');
  const output = checkEmbeddingsOutput(options.out, options.force);

  let seen = 0;
  async function* items(): AsyncGenerator<PipelineItem<FolderItem>> {
    for await (const f of scanFolder(root)) {
      // An export written into the folder it reads (a rerun, or --force) is not one of its images.
      if (output.files.some((o) => f.abs === o || isTemporaryOf(f.abs, o))) continue;
      const unlisted = f.unlisted;
      const item = { index: seen++, rel: f.rel, label: f.className };
      yield {
        item,
        load: () =>
          unlisted === undefined
            ? readFileTyped(f.abs)
            : Promise.reject(new FewShotError('UNREADABLE', unlisted)),
      };
    }
  }

  const found: { item: FolderItem; vector: Float32Array }[] = [];
  const skipped: (SkippedImage & { index: number })[] = [];
  const pool = options.decodePool ?? new DecodePool();
  try {
    let done = 0;
    for await (const batch of embedAll(backbone, items(), {
      batchSize: options.batchSize ?? 16,
      ...(options.signal ? { signal: options.signal } : {}),
      decodeWith: (bytes, spec) => pool.crop(bytes, spec, DEFAULT_LIMITS, 'full'),
    })) {
      for (const r of batch) {
        if (r.ok) found.push({ item: r.item, vector: r.vector });
        else skipped.push({ index: r.item.index, path: r.item.rel, ...r.error });
      }
      done += batch.length;
      options.onProgress?.({ phase: 'features', done, total: Math.max(seen, done) });
    }
  } finally {
    if (!options.decodePool) pool.close();
  }
  if (found.length === 0 && skipped.length === 0)
    throw new FewShotError('INVALID_INPUT', `No images in ${folder}.`);
  if (found.length === 0) throw nothingDecoded(skipped);
  // The pipeline yields a batch's failures first: rows go back into the folder's order.
  found.sort((a, b) => a.item.index - b.item.index);
  skipped.sort((a, b) => a.index - b.index);
  const dim = (found[0] as { vector: Float32Array }).vector.length;
  const rows: EmbeddingRow[] = found.map((f) => ({
    path: f.item.rel,
    label: f.item.label,
    group: null,
    excluded: false,
  }));
  writeEmbeddings(output, rows, (i) => (found[i] as { vector: Float32Array }).vector, dim, {
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (d, total) => options.onProgress?.({ phase: 'writing', done: d, total }),
  });
  return summary(
    backbone,
    output,
    rows.length,
    dim,
    {
      includeExcluded: false,
      skipped: skipped.map(({ path: p, code, message }) => ({ path: p, code, message })),
      fromCache: 0,
      computed: rows.length,
    },
    started,
  );
}
