// Fine-tuned models in a project: training (with a group-aware validation split for early stopping and
// calibration when every class has enough images), evaluation with any protocol (one fine-tuning per
// split, predictions through ONNX Runtime), and the model record.

import { FewShotError } from '../../../shared/errors.ts';
import crypto from 'node:crypto';
import type { EvaluationResult, Prediction, Protocol, TrainResult } from '../../../shared/results.ts';
import type { RunPace } from '../../../shared/requests.ts';
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
import { backboneGraph } from '../backbones/backbone.ts';
import { findFeatureTensor } from '../onnx/graph.ts';
import { stageCut } from './stages.ts';
import { stageMacs } from './train-graph.ts';
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
  onProgress?: (p: {
    phase: string;
    done: number;
    total: number;
    loss?: number;
    message?: string;
    /** The whole run (folds choosing the epochs, caching, steps) in units of work. */
    overall?: { done: number; total: number };
    /** At an epoch's end: the fit it belongs to, its mean training loss and held-out accuracy. */
    epoch?: { run: string; epoch: number; loss: number; validationAccuracy: number | null };
  }) => void;
}

export async function evaluateFinetune(
  project: Project,
  entry: ResolvedBackbone,
  protocol: Protocol,
  options: FinetuneRunOptions & { groupAware?: boolean },
  /** What fine-tunes each split: the ONNX Runtime engine; tests pass the TensorFlow.js oracle here. */
  trainer: (
    entry: ResolvedBackbone,
    classes: string[],
    train: TrainingImage[],
    options: FinetuneOptions,
    validation?: TrainingImage[],
  ) => Promise<{ onnx: Uint8Array }> = finetune,
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
    // Each split's model is made as the model itself was (planRun): with ≥ 10 training images in every
    // class, a validation split of them (groups whole) stops early and fits the temperature.
    const inner = innerValidation(data, groups, sp.train, classMap, sp.seed);
    const r = await trainer(
      entry,
      sub.map((c) => data.classes[c] as string),
      trainingImages(project, data, inner.train, classMap),
      { ...ftOptions, seed: sp.seed },
      trainingImages(project, data, inner.test, classMap),
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
 * The validation split a fine-tuning holds out of its training images `y` (class indices 0…C−1): a
 * fifth, stratified, groups whole, when every class has at least 10; else none. The model's own run
 * (planRun) and each split's model in an evaluation use this one rule. Returns positions in `y`.
 */
export function validationSplit(
  y: number[],
  groups: (string | null)[] | null,
  seed: number,
  C: number,
): { train: number[]; test: number[] } {
  const counts = new Array<number>(C).fill(0);
  for (const c of y) counts[c] = (counts[c] as number) + 1;
  if (Math.min(...counts) < 10) return { train: y.map((_, i) => i), test: [] };
  return holdout(y, groups, 0.2, seed, C);
}

/** A split's training images (project indices) with the validation split held out of them. */
function innerValidation(
  data: FinetuneData,
  groups: (string | null)[] | null,
  train: number[],
  classMap: Map<number, number>,
  seed: number,
): { train: number[]; test: number[] } {
  const y = train.map((i) => classMap.get(data.y[i] as number) as number);
  const h = validationSplit(y, groups ? train.map((i) => groups[i] ?? null) : null, seed, classMap.size);
  return { train: h.train.map((j) => train[j] as number), test: h.test.map((j) => train[j] as number) };
}

/**
 * Decoding and augmenting one image-view, in multiply–accumulates of the same CPU's inference: about
 * 0.4 GMAC (BCCD crops here: ~5 ms a view, against a SqueezeNet forward pass of 0.35 GMAC in ~6 ms).
 */
const DECODE_MACS = 0.4e9;

/**
 * The whole run's work in one count, so the ETA covers every phase. With the pace the Train screen
 * measured, in its seconds: an image-view cached, an image through a training step (a validation image
 * scored: a third of one). Without one, in multiply–accumulates: an image-view through decoding and the
 * frozen layers, an image through a step.
 */
export class RunMeter {
  private base = 0;
  total = 0;
  private readonly prefixUnit: number;
  private readonly stepUnit: number;
  constructor(
    entry: ResolvedBackbone,
    strategy: FinetuneRunOptions['strategy'],
    private readonly report?: FinetuneRunOptions['onProgress'],
    pace?: RunPace,
  ) {
    if (pace) {
      this.prefixUnit = pace.prefixSecondsPerImage;
      this.stepUnit = pace.stepSeconds / pace.batchSize;
      return;
    }
    const model = backboneGraph(entry);
    const features = entry.output.name ?? findFeatureTensor(model);
    const macs = stageMacs(model, features, stageCut(model, entry.architecture, strategy), [
      3,
      entry.input.height,
      entry.input.width,
    ]);
    this.prefixUnit = (macs.total - macs.tail + DECODE_MACS) / macs.total;
    this.stepUnit = (3 * macs.tail) / macs.total;
  }

  private units(
    r: { train: number; validation: number; perEpoch: number; epochs: number },
    views: number,
  ): number {
    return (
      (r.train * views + r.validation) * this.prefixUnit +
      r.epochs * (r.perEpoch + r.validation / 3) * this.stepUnit
    );
  }

  private planned: { train: number; validation: number; perEpoch: number; epochs: number }[] = [];

  /** The runs to come, in order: their sum is the whole run's work. */
  plan(runs: { train: number; validation: number; perEpoch: number; epochs: number }[], views = 4): void {
    this.planned = runs;
    this.base = 0;
    this.total = runs.reduce((s, r) => s + this.units(r, views), 0);
  }

  /** The last planned run changed (its epochs chosen by the folds before it). */
  replanLast(run: { train: number; validation: number; perEpoch: number; epochs: number }, views = 4): void {
    const last = this.planned[this.planned.length - 1];
    if (last) this.total += this.units(run, views) - this.units(last, views);
    this.planned[this.planned.length - 1] = run;
  }

  /** Starts one fine-tuning of `train` images (+ `validation`), and returns the options that report it. */
  run(
    train: number,
    validation: number,
    perEpoch: number,
    options: FinetuneRunOptions,
    phase: (p: { epoch: number; epochs: number }) => { phase: string; message: string },
    run = 'final',
  ): Required<Pick<FinetuneOptions, 'onPrefixProgress' | 'onProgress'>> {
    const views = options.views ?? 4;
    const epochs = options.epochs ?? 10;
    const prefix = (train * views + validation) * this.prefixUnit;
    // Every epoch ends by scoring the validation split through the trained layers: a third of a step.
    const scoring = (validation / 3) * this.stepUnit;
    const base = this.base;
    this.base += prefix + epochs * (perEpoch + validation / 3) * this.stepUnit;
    this.total = Math.max(this.total, this.base); // a run not planned still moves the count forward
    const batch = options.batchSize ?? 16;
    return {
      onPrefixProgress: (done, total) =>
        this.report?.({
          // A full fine-tune has no frozen layers: this phase only decodes and augments its views.
          phase: options.strategy === 'full' ? 'decoding and augmenting' : 'caching the frozen layers',
          done,
          total,
          overall: { done: base + done * this.prefixUnit, total: this.total },
        }),
      onProgress: (p) => {
        const d = phase(p);
        if (p.epochEnd) {
          this.report?.({
            ...d,
            done: p.step,
            total: p.steps,
            epoch: { run, epoch: p.epoch, loss: p.loss, validationAccuracy: p.validationAccuracy ?? null },
            overall: {
              done:
                base +
                prefix +
                Math.min(p.step * batch, epochs * perEpoch) * this.stepUnit +
                Math.min(p.epoch, epochs) * scoring,
              total: this.total,
            },
          });
          return;
        }
        this.report?.({
          ...d,
          done: p.step,
          total: p.steps,
          loss: p.loss,
          overall: {
            done:
              base +
              prefix +
              Math.min(p.step * batch, epochs * perEpoch) * this.stepUnit +
              Math.min(p.epoch - 1, epochs) * scoring,
            total: this.total,
          },
        });
      },
    };
  }
}

/**
 * How a fine-tuning run uses the project's images: a validation split (groups kept whole) for early
 * stopping and the temperature when every class can spare images for it; with fewer, the number of
 * epochs is chosen by 3-fold cross-validation (when every class has 3); else a fixed number.
 */
export function planRun(
  data: FinetuneData,
  seed: number,
): { split: { train: number[]; test: number[] }; folds: ReturnType<typeof planSplits>['splits'] | null } {
  const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
  const split = validationSplit(data.y, data.groups, seed, data.classes.length);
  const folds =
    !split.test.length && Math.min(...counts) >= 3
      ? planSplits(data.y, data.groups, data.classes.length, { kind: 'kfold', folds: 3 }, seed).splits
      : null;
  return { split, folds };
}

/** Images one epoch's balanced order holds: the largest class's count, for every class. */
export function perEpoch(y: number[], idx: number[], classes: number): number {
  const counts = new Array<number>(classes).fill(0);
  for (const i of idx) counts[y[i] as number] = (counts[y[i] as number] ?? 0) + 1;
  return Math.max(...counts) * counts.filter((c) => c > 0).length;
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
  meter: RunMeter,
  splits: ReturnType<typeof planSplits>['splits'],
): Promise<number> {
  const max = options.epochs ?? 10;
  const sums = new Array<number>(max).fill(0);
  const identity = new Map(data.classes.map((_, c) => [c, c]));
  const { onProgress: _p, ...ft } = options;
  for (const [k, sp] of splits.entries()) {
    const r = await finetune(
      entry,
      data.classes,
      trainingImages(project, data, sp.train, identity),
      {
        ...ft,
        epochs: max,
        seed: sp.seed,
        ...meter.run(
          sp.train.length,
          sp.test.length,
          perEpoch(data.y, sp.train, data.classes.length),
          { ...options, epochs: max },
          (p) => ({
            phase: 'choosing the number of epochs',
            message: `fold ${k + 1}/${splits.length}, epoch ${p.epoch}/${p.epochs}`,
          }),
          `fold ${k + 1}/${splits.length}`,
        ),
      },
      trainingImages(project, data, sp.test, identity),
    );
    r.history.forEach((h, e) => (sums[e] = (sums[e] as number) + (h.validationAccuracy ?? 0)));
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
  runOptions: FinetuneRunOptions & { name?: string; pace?: RunPace },
): Promise<TrainResult & { validation?: EvaluationResult }> {
  // The measured pace only weighs the progress: no part of the run, its checkpoint key included.
  const { pace, ...rest } = runOptions;
  let options: FinetuneRunOptions & { name?: string } = rest;
  const started = performance.now();
  const seed = options.seed ?? 0;
  const data = finetuneData(project);
  const jobId =
    options.jobId ?? project.jobs.create('train', { backbone: entry.id, strategy: options.strategy, seed });
  try {
    const { split, folds } = planRun(data, seed);
    const identity = new Map(data.classes.map((_, c) => [c, c]));
    let epochsChosenBy = split.test.length ? 'early stopping on a validation split' : 'fixed';
    const meter = new RunMeter(entry, options.strategy, options.onProgress, pace);
    if (folds) {
      const splits = folds;
      // The whole run is planned before it starts: three folds, then the final fit (at most epochs).
      const epochsMax = options.epochs ?? 10;
      meter.plan([
        ...splits.map((sp) => ({
          train: sp.train.length,
          validation: sp.test.length,
          perEpoch: perEpoch(data.y, sp.train, data.classes.length),
          epochs: epochsMax,
        })),
        {
          train: split.train.length,
          validation: 0,
          perEpoch: perEpoch(data.y, split.train, data.classes.length),
          epochs: epochsMax,
        },
      ]);
      const epochs = await crossValidatedEpochs(project, entry, data, options, meter, splits);
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
    const finalRun = {
      train: split.train.length,
      validation: split.test.length,
      perEpoch: perEpoch(data.y, split.train, data.classes.length),
      epochs: options.epochs ?? 10,
    };
    if (epochsChosenBy.startsWith('3-fold')) meter.replanLast(finalRun);
    else meter.plan([finalRun]);
    const result = await finetune(
      entry,
      data.classes,
      trainingImages(project, data, split.train, identity),
      {
        ...options,
        // One count over every step (and the caching and folds before them): the ETA covers the whole run.
        ...meter.run(finalRun.train, finalRun.validation, finalRun.perEpoch, options, (p) => ({
          phase: 'training',
          message: `epoch ${p.epoch}/${p.epochs}`,
        })),
        checkpoint: {
          load: () => project.checkpoint(key)?.state ?? null,
          save: (epoch, state) => project.saveCheckpoint(key, epoch, state),
        },
      },
      trainingImages(project, data, split.test, identity),
    );
    let estimate: TrainResult['estimate'] = null;
    let validation: EvaluationResult | undefined;
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
      // The Review of this model: its own predictions on the split, with the honest (cross-fitted) ECE
      // or none, instead of fine-tuning a second model on the same split without the validation.
      const { calibration: _inSample, ...rest } = ev;
      validation = {
        ...rest,
        ...(crossFitted ? { calibration: crossFitted.calibration } : {}),
        source: 'model-validation',
      };
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
      device: result.device,
      ...(result.deviceNote ? { deviceNote: result.deviceNote } : {}),
      ...(result.placement
        ? {
            placement: {
              provider: result.placement.provider,
              nodes: result.placement.nodes,
              cpuNodes: result.placement.cpuNodes,
              cpuOps: result.placement.cpuOps,
            },
          }
        : {}),
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
      ...(validation ? { validation } : {}),
    };
  } catch (e) {
    project.jobs.fail(jobId, e);
    throw e;
  }
}
