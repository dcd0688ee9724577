// Fine-tuned models in a project: training (with a group-aware validation split for early stopping and
// calibration when every class has enough images), evaluation with any protocol (one fine-tuning per
// split, predictions through ONNX Runtime), and the model record.

import { FewShotError } from '../../../shared/errors.ts';
import crypto from 'node:crypto';
import type { EvaluationResult, Prediction, Protocol, TrainResult } from '../../../shared/results.ts';
import type { ImageRecord } from '../../store/images-repo.ts';
import type { Project } from '../../store/project.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import { fileSha256 } from '../backbones/backbone.ts';
import { crossFittedCalibration } from '../classify/calibration.ts';
import { argmax } from '../classify/linalg.ts';
import { modelEstimate, planSplits, splitUnit, summarize, type Unit } from '../evaluate/evaluate.ts';
import { holdout } from '../evaluate/splits.ts';
import { embedAll } from '../features/pipeline.ts';
import { windowed } from '../image/windowing.ts';
import { softwareVersions } from '../versions.ts';
import { finetune, type FinetuneOptions, type FinetuneStrategy, type TrainingImage } from './finetune.ts';
import { OnnxClassifier } from '../onnx/onnx-classifier.ts';

export interface FinetuneData {
  images: ImageRecord[];
  y: number[];
  classes: string[];
  groups: (string | null)[] | null;
}

export function finetuneData(project: Project): FinetuneData {
  const images = project.images.list({ labelledOnly: true });
  const classes = [...new Set(images.map((i) => i.className as string))].sort();
  if (classes.length < 2)
    throw new FewShotError('INVALID_INPUT', 'The project needs labelled images in at least two classes.');
  const index = new Map(classes.map((c, i) => [c, i]));
  return {
    images,
    y: images.map((i) => index.get(i.className as string) as number),
    classes,
    groups: images.some((i) => i.groupKey !== null) ? images.map((i) => i.groupKey) : null,
  };
}

function trainingImages(
  project: Project,
  data: FinetuneData,
  idx: number[],
  classMap: Map<number, number>,
): TrainingImage[] {
  return idx.map((i) => {
    const img = data.images[i] as ImageRecord;
    return {
      bytes: () => windowed(project.images.bytes(img.sha256) ?? new Uint8Array(0), project.highBitDepth()),
      label: classMap.get(data.y[i] as number) as number,
    };
  });
}

/** Runs the exported graph on test images: probabilities over the split's classes, mapped to all classes. */
async function predict(
  project: Project,
  data: FinetuneData,
  onnx: Uint8Array,
  entry: ResolvedBackbone,
  test: number[],
  sub: number[],
): Promise<Prediction[]> {
  const c = await OnnxClassifier.load(onnx, entry.input, { threads: 2 });
  const out: Prediction[] = [];
  try {
    const items = test.map((i) => ({
      item: i,
      load: () =>
        windowed(
          project.images.bytes((data.images[i] as ImageRecord).sha256) ?? new Uint8Array(0),
          project.highBitDepth(),
        ),
    }));
    for await (const batch of embedAll(c, items)) {
      for (const r of batch) {
        if (!r.ok) continue;
        const local = r.vector;
        const probabilities = data.classes.map((_, k) => {
          const j = sub.indexOf(k);
          return j >= 0 ? (local[j] as number) : 0;
        });
        out.push({
          index: r.item,
          id: (data.images[r.item] as ImageRecord).id,
          truth: data.y[r.item] as number,
          predicted: sub[argmax(local)] as number,
          probabilities,
        });
      }
    }
  } finally {
    await c.release();
  }
  return out;
}

export interface FinetuneRunOptions extends Omit<FinetuneOptions, 'onProgress' | 'strategy'> {
  strategy: FinetuneStrategy;
  /** The job's row, created by the caller; without one the run records its own. */
  jobId?: string;
  onProgress?: (p: { phase: string; done: number; total: number; loss?: number; message?: string }) => void;
}

export async function evaluateFinetune(
  project: Project,
  entry: ResolvedBackbone,
  protocol: Protocol,
  options: FinetuneRunOptions & { groupAware?: boolean },
): Promise<EvaluationResult> {
  const data = finetuneData(project);
  const seed = options.seed ?? 0;
  const groups = options.groupAware === false ? null : data.groups;
  const { splits, pooled } = planSplits(data.y, groups, data.classes.length, protocol, seed);
  const units: Unit[] = [];
  for (const [k, sp] of splits.entries()) {
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Evaluation cancelled.');
    const sub = sp.classes ?? data.classes.map((_, c) => c);
    const classMap = new Map(sub.map((c, i) => [c, i]));
    const { onProgress: _progress, groupAware: _groups, ...ftOptions } = options;
    const r = await finetune(
      entry,
      sub.map((c) => data.classes[c] as string),
      trainingImages(project, data, sp.train, classMap),
      { ...ftOptions, seed: sp.seed },
    );
    units.push(splitUnit(await predict(project, data, r.onnx, entry, sp.test, sub), data.classes));
    options.onProgress?.({ phase: 'evaluating', done: k + 1, total: splits.length });
  }
  return summarize(
    data,
    { strategy: options.strategy, protocol, seed, groupAware: groups !== null, pooled, splits },
    units,
  );
}

/**
 * With too few images to hold a validation split out, the epoch count is chosen by 3-fold
 * cross-validation (groups kept whole): the epoch with the best mean held-out accuracy.
 */
async function crossValidatedEpochs(
  project: Project,
  entry: ResolvedBackbone,
  data: FinetuneData,
  options: FinetuneRunOptions,
): Promise<number> {
  const max = options.epochs ?? 10;
  const { splits } = planSplits(
    data.y,
    data.groups,
    data.classes.length,
    { kind: 'kfold', folds: 3 },
    options.seed ?? 0,
  );
  const sums = new Array<number>(max).fill(0);
  const identity = new Map(data.classes.map((_, c) => [c, c]));
  const { onProgress: _p, ...ft } = options;
  for (const [k, sp] of splits.entries()) {
    const r = await finetune(
      entry,
      data.classes,
      trainingImages(project, data, sp.train, identity),
      { ...ft, epochs: max, seed: sp.seed },
      trainingImages(project, data, sp.test, identity),
    );
    r.history.forEach((h, e) => (sums[e] = (sums[e] as number) + (h.validationAccuracy ?? 0)));
    options.onProgress?.({ phase: 'choosing the number of epochs', done: k + 1, total: splits.length });
  }
  let best = 0;
  sums.forEach((v, e) => {
    if (v > (sums[best] as number) + 1e-9) best = e;
  });
  return best + 1;
}

export async function trainFinetuneModel(
  project: Project,
  entry: ResolvedBackbone,
  options: FinetuneRunOptions & { name?: string },
): Promise<TrainResult> {
  const started = performance.now();
  const seed = options.seed ?? 0;
  const data = finetuneData(project);
  const jobId =
    options.jobId ?? project.jobs.create('train', { backbone: entry.id, strategy: options.strategy, seed });
  try {
    const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
    // A validation split (groups kept whole) for early stopping and the temperature, when every class
    // can spare images for it; with fewer, the number of epochs is chosen by cross-validation.
    const all = data.y.map((_, i) => i);
    const split =
      Math.min(...counts) >= 10
        ? holdout(data.y, data.groups, 0.2, seed, data.classes.length)
        : { train: all, test: [] as number[] };
    const identity = new Map(data.classes.map((_, c) => [c, c]));
    let epochsChosenBy = split.test.length ? 'early stopping on a validation split' : 'fixed';
    if (!split.test.length && Math.min(...counts) >= 3) {
      const epochs = await crossValidatedEpochs(project, entry, data, options);
      epochsChosenBy = `3-fold cross-validation (best of 1–${options.epochs ?? 10})`;
      options = { ...options, epochs };
    }
    // One key per (settings, data, decoding): rerunning the same command after a crash resumes from its
    // checkpoint, and never from one made under another 16-bit setting.
    const { signal: _s, onProgress: _p, jobId: _j, name: _n, ...settings } = options;
    const key = crypto
      .createHash('sha256')
      .update(
        JSON.stringify({
          settings,
          highBitDepth: project.highBitDepth(),
          backbone: fileSha256(entry.path),
          train: split.train.map((i) => [data.images[i]?.sha256, data.y[i]]),
          validation: split.test.map((i) => data.images[i]?.sha256),
        }),
      )
      .digest('hex');
    const resumedFrom = project.checkpoint(key)?.epoch ?? 0;
    const result = await finetune(
      entry,
      data.classes,
      trainingImages(project, data, split.train, identity),
      {
        ...options,
        onPrefixProgress: (done, total) =>
          options.onProgress?.({ phase: 'caching the frozen layers', done, total }),
        onProgress: (p) =>
          // One phase over every step, so the ETA covers the whole run rather than restarting each epoch.
          options.onProgress?.({
            phase: 'training',
            message: `epoch ${p.epoch}/${p.epochs}`,
            done: p.step,
            total: p.steps,
            loss: p.loss,
          }),
        checkpoint: {
          load: () => project.checkpoint(key)?.state ?? null,
          save: (epoch, state) => project.saveCheckpoint(key, epoch, state),
        },
      },
      trainingImages(project, data, split.test, identity),
    );
    let estimate: TrainResult['estimate'] = null;
    if (split.test.length) {
      const preds = await predict(
        project,
        data,
        result.onnx,
        entry,
        split.test,
        data.classes.map((_, c) => c),
      );
      const ev = summarize(
        data,
        {
          strategy: options.strategy,
          protocol: { kind: 'holdout', testFraction: 0.2 },
          seed,
          groupAware: data.groups !== null,
          pooled: true,
          splits: [{ ...split, seed }],
        },
        [splitUnit(preds, data.classes)],
      );
      // The hold-out also fitted T, so its ECE is cross-fitted: T from one half rescales the other. The
      // graph's probabilities are softmax(z / T); T · log p gives z back up to a shift per row.
      const T = result.temperature;
      const crossFitted = crossFittedCalibration(
        preds.map((p) => p.probabilities.map((v) => T * Math.log(Math.max(v, 1e-38)))),
        preds.map((p) => p.truth),
      );
      estimate = modelEstimate(ev, crossFitted?.calibration ?? null);
    }
    const params: Record<string, unknown> = {
      ...result.settings,
      highBitDepth: project.highBitDepth(),
      temperature: result.temperature,
      temperatureFittedOn: split.test.length
        ? `validation split (${split.test.length} images), NLL with Laplace-smoothed targets`
        : 'out-of-fold predictions of the linear probe on frozen features',
      bestEpoch: result.bestEpoch,
      history: result.history,
      backend: `${result.runtime} (training steps, frozen prefix and inference)`,
      providers: result.providers,
      steps: result.steps,
      trainable: result.trainable.length,
      weightsSha256: result.weightsSha256,
      prefixSeconds: Number(result.seconds.prefix.toFixed(2)),
      tailSeconds: Number(result.seconds.tail.toFixed(2)),
      trainingSeconds: Number(((performance.now() - started) / 1000).toFixed(2)),
      validationImages: split.test.length,
      resumedFromEpoch: resumedFrom,
      epochsChosenBy,
    };
    const trainSet = split.train.map((i) => data.images[i] as ImageRecord);
    // A cancel that arrived during the last step still wins: nothing is saved.
    if (options.signal?.aborted)
      throw new FewShotError('CANCELLED', 'Training cancelled; no model was saved.');
    const modelId = project.db.transaction(() => {
      const id = project.models.insert({
        name: options.name ?? `${options.strategy} on ${entry.id}`,
        backboneId: entry.id,
        backboneSha256: fileSha256(entry.path),
        strategy: options.strategy,
        params,
        seed,
        classes: data.classes,
        trainingSet: trainSet.map((i) => ({ id: i.id, sha256: i.sha256, class: i.className as string })),
        metrics: estimate,
        software: softwareVersions(),
        artefact: Buffer.from(result.onnx),
        jobId,
      });
      project.audit.append('train', {
        modelId: id,
        strategy: options.strategy,
        backbone: entry.id,
        images: trainSet.length,
        seed,
      });
      project.jobs.finish(jobId, 'done', { modelId: id });
      project.dropCheckpoint(key);
      return id;
    })();
    return {
      modelId,
      strategy: options.strategy,
      backbone: entry.id,
      classes: data.classes,
      images: trainSet.length,
      seed,
      params,
      estimate,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (e) {
    project.jobs.fail(jobId, e);
    throw e;
  }
}
