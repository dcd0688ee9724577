// Batch classification of a folder tree: streaming (files are listed lazily and embedded in batches),
// resumable (each batch of predictions is committed; a rerun of the same command skips what is done),
// per-file errors recorded without stopping, a CSV written atomically from the stored predictions, and
// optionally one folder per predicted class plus `_uncertain` and `_errors`.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../../shared/errors.ts';
import type { PredictionRow } from '../../store/batch-repo.ts';
import type { ModelRecord } from '../../store/models-repo.ts';
import type { Project } from '../../store/project.ts';
import type { ModelRunner } from '../model-runner.ts';
import { argmax } from '../classify/linalg.ts';
import { embedAll, type PipelineItem } from '../features/pipeline.ts';
import { csvField } from '../import/csv.ts';
import { scanFolder } from '../import/scan.ts';
import { fsReason } from '../fs-errors.ts';
import { modelHighBitDepth } from '../image/windowing.ts';
import { DEFAULT_LIMITS } from '../image/decode.ts';
import { DecodePool } from '../image/decode-pool.ts';
import { isTemporaryOf, temporaryPath, writeChunksAtomic } from '../atomic-file.ts';
import type { ClassifySummary } from '../../../shared/results.ts';
import { ttaViews, type TtaKind } from '../../../shared/tta.ts';

export type { ClassifySummary };

export interface ClassifyOptions {
  outCsv: string;
  sortInto?: string;
  /** Hard-link instead of copying into the sorted folders (falls back to a copy across devices). */
  link?: boolean;
  /** Below this top probability a file is "uncertain" (default 0.5). */
  minConfidence?: number;
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: { processed: number; skipped: number; errors: number }) => void;
  /** The decode processes to use; by default the run starts its own and stops them at the end. */
  decodePool?: DecodePool;
  /** The job's row, created by the caller; without one the run records its own. */
  jobId?: string;
  /** Test-time augmentation: its views, and the temperature fitted for them (null: the model's own). */
  tta?: { kind: TtaKind; temperature: number | null; temperatureFrom: string };
}

export const UNCERTAIN_FOLDER = '_uncertain';
export const ERRORS_FOLDER = '_errors';
/** A top probability below this makes a prediction "uncertain" unless the caller sets another threshold. */
export const DEFAULT_MIN_CONFIDENCE = 0.5;

/** A file's bytes; a file that cannot be read is an UNREADABLE error with the reason. */
export async function readFileTyped(abs: string): Promise<Uint8Array> {
  try {
    return await fs.promises.readFile(abs);
  } catch (e) {
    const why = fsReason(e, 'the file disappeared before it was read');
    throw new FewShotError('UNREADABLE', `Cannot read the file (${why}).`);
  }
}

/** The nearest existing folder at or above `dir` must be writable (the rest is created later). */
function assertWritableFolder(dir: string, what: string): void {
  let d = dir;
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  try {
    fs.accessSync(d, fs.constants.W_OK);
  } catch {
    throw new FewShotError('INVALID_INPUT', `Cannot write ${what} to ${dir}: ${d} is read-only.`);
  }
}

function placeFile(src: string, dest: string, link: boolean): void {
  if (fs.existsSync(dest)) return; // idempotent on resume
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = temporaryPath(dest);
  if (link) {
    try {
      fs.linkSync(src, dest);
      return;
    } catch {
      // another device: copy instead
    }
  }
  fs.copyFileSync(src, tmp);
  fs.renameSync(tmp, dest);
}

export function writeCsv(project: Project, runId: string, classes: string[], out: string): void {
  const header = [
    'path',
    'predicted',
    'confidence',
    'status',
    ...classes.map((c) => `p_${c}`),
    'error_code',
    'error_message',
  ];
  function* lines(): Generator<string> {
    yield `${header.map(csvField).join(',')}\n`;
    for (const r of project.batches.iterate(runId)) {
      const probs = classes.map((_, i) => (r.probabilities ? (r.probabilities[i] as number).toFixed(6) : ''));
      yield `${[r.relPath, r.predicted ?? '', r.confidence === null ? '' : r.confidence.toFixed(6), r.status, ...probs, r.errorCode ?? '', r.errorMessage ?? ''].map(csvField).join(',')}\n`;
    }
  }
  writeChunksAtomic(out, lines());
}

export async function classifyFolder(
  project: Project,
  runner: ModelRunner,
  model: ModelRecord,
  folder: string,
  options: ClassifyOptions,
): Promise<ClassifySummary> {
  const started = performance.now();
  const root = path.resolve(folder);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory())
    throw new FewShotError('NOT_FOUND', `No folder at ${folder}.`);
  const minConfidence = options.minConfidence ?? DEFAULT_MIN_CONFIDENCE;
  if (!(minConfidence >= 0 && minConfidence <= 1))
    throw new FewShotError('INVALID_INPUT', '--min-confidence must be between 0 and 1.');
  const outCsv = path.resolve(options.outCsv);
  const sortInto = options.sortInto ? path.resolve(options.sortInto) : null;
  // Where the results go is checked now, not after an hour of classification.
  assertWritableFolder(path.dirname(outCsv), 'the CSV');
  if (sortInto) assertWritableFolder(sortInto, 'the sorted copies');
  const tta = options.tta && options.tta.kind !== 'none' ? options.tta : null;
  const params = {
    out: outCsv,
    sortInto,
    link: options.link ?? false,
    minConfidence,
    ...(tta ? { tta: { ...tta, views: ttaViews(tta.kind).length } } : {}),
  };

  const previous = project.batches.unfinished(model.id, root, params);
  const jobId =
    options.jobId ??
    project.jobs.create('batch', {
      modelId: model.id,
      root: path.basename(root),
      resume: previous?.id ?? null,
    });
  const runId = previous?.id ?? project.batches.create(model.id, root, params, jobId);
  // New files are read the way the model's training images were (its 16-bit policy).
  const policy = modelHighBitDepth(model);
  if (previous) project.batches.attachJob(runId, jobId);

  let files = 0;
  let alreadyDone = 0;
  let now = 0;
  let errors = 0;
  let lastProgress = 0;
  // Files byte-identical to the model's own training images: their predictions say nothing about new data.
  const trained = new Set(model.trainingSet.map((t) => t.sha256));
  const inTraining: string[] = [];
  const checkTrained = (rel: string, bytes: Uint8Array): Uint8Array => {
    if (trained.has(crypto.createHash('sha256').update(bytes).digest('hex'))) inTraining.push(rel);
    return bytes;
  };

  // Files are listed lazily; those already predicted (a resumed run) are skipped before any decoding.
  async function* items(): AsyncGenerator<PipelineItem<{ rel: string; abs: string; folder: boolean }>> {
    for await (const f of scanFolder(root)) {
      if (f.abs === outCsv || isTemporaryOf(f.abs, outCsv)) continue;
      if (sortInto && (f.abs === sortInto || f.abs.startsWith(sortInto + path.sep))) continue;
      files++;
      if (project.batches.done(runId, f.rel)) {
        alreadyDone++;
        continue;
      }
      const unlisted = f.unlisted;
      yield {
        item: { rel: f.rel, abs: f.abs, folder: unlisted !== undefined },
        // A folder that could not be listed is one error row, so the CSV says what was not classified.
        load: () =>
          unlisted === undefined
            ? readFileTyped(f.abs).then((b) => checkTrained(f.rel, b))
            : Promise.reject(new FewShotError('UNREADABLE', unlisted)),
      };
    }
  }

  // New files are untrusted: they are decoded and cropped in decode processes, so one that crashes or
  // hangs a decoder becomes an error row and the run goes on.
  const pool = options.decodePool ?? new DecodePool();
  try {
    for await (const batch of embedAll(runner.embedder, items(), {
      batchSize: options.batchSize ?? 16,
      ...(options.signal ? { signal: options.signal } : {}),
      decodeWith: (bytes, spec) => pool.crop(bytes, spec, DEFAULT_LIMITS, policy),
      ...(tta
        ? {
            tta: tta.kind,
            decodeViewsWith: (bytes, spec, views) =>
              pool.cropViews(bytes, spec, DEFAULT_LIMITS, policy, views),
          }
        : {}),
    })) {
      const rows: PredictionRow[] = batch.map((r) => {
        if (!r.ok)
          return {
            relPath: r.item.rel,
            status: 'error',
            predicted: null,
            confidence: null,
            probabilities: null,
            errorCode: r.error.code,
            errorMessage: r.error.message,
          };
        const p =
          tta && r.views
            ? runner.viewProbabilities(r.views, tta.temperature)
            : runner.probabilities(r.vector);
        const k = argmax(p);
        const confidence = p[k] as number;
        return {
          relPath: r.item.rel,
          status: confidence < minConfidence ? 'uncertain' : 'ok',
          predicted: runner.classes[k] as string,
          confidence,
          probabilities: Array.from(p),
          errorCode: null,
          errorMessage: null,
        };
      });
      project.db.transaction(() => {
        for (const row of rows) project.batches.add(runId, row);
      })();
      now += rows.length;
      errors += rows.filter((r) => r.status === 'error').length;
      if (sortInto) {
        batch.forEach((r, i) => {
          const row = rows[i] as PredictionRow;
          const label =
            row.status === 'error'
              ? ERRORS_FOLDER
              : row.status === 'uncertain'
                ? UNCERTAIN_FOLDER
                : (row.predicted as string);
          if (!r.item.folder)
            placeFile(r.item.abs, path.join(sortInto, label, r.item.rel), options.link ?? false);
        });
      }
      const t = performance.now();
      if (t - lastProgress > 100) {
        lastProgress = t;
        const p = { processed: now + alreadyDone, skipped: alreadyDone, errors };
        options.onProgress?.(p);
        project.jobs.progress(jobId, p);
      }
    }
    writeCsv(project, runId, runner.classes, outCsv);
    const perClass: Record<string, number> = {};
    let ok = 0;
    let uncertain = 0;
    let errorsTotal = 0;
    for (const s of project.batches.summary(runId)) {
      if (s.status === 'error') errorsTotal += s.n;
      else {
        if (s.status === 'ok') ok += s.n;
        else uncertain += s.n;
        perClass[s.predicted as string] = (perClass[s.predicted as string] ?? 0) + s.n;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const summary: ClassifySummary = {
      runId,
      resumed: previous !== null,
      files,
      classifiedNow: now,
      alreadyDone,
      ok,
      uncertain,
      errors: errorsTotal,
      perClass,
      imagesPerSecond: now / seconds,
      seconds,
      csv: outCsv,
      inTraining: { files: inTraining.length, examples: inTraining.sort().slice(0, 10) },
    };
    project.db.transaction(() => {
      project.audit.append('classify', {
        runId,
        modelId: model.id,
        files,
        ok,
        uncertain,
        errors: errorsTotal,
        ...(tta ? { tta: tta.kind } : {}),
        ...(inTraining.length ? { inTraining: inTraining.length } : {}),
      });
      project.jobs.finish(jobId, 'done', summary);
    })();
    return summary;
  } catch (e) {
    project.jobs.fail(jobId, e);
    throw e;
  } finally {
    if (!options.decodePool) pool.close();
  }
}
