// Honest evaluation on tiny data: repeated episodes, (group-aware) k-fold, leave-one-out or a hold-out
// split; every headline figure with a 95 % interval whose method is named.

import { FewShotError } from '../../../shared/errors.ts';
import { averageSoftmax, expectedCalibrationError, fitTemperatureViews } from '../classify/calibration.ts';
import { fitHead, logits, predictProba, type FitOptions, type Strategy } from '../classify/heads.ts';
import { argmax, type Vec } from '../classify/linalg.ts';
import type { Dataset } from '../classify/dataset.ts';
import { Rng } from '../random.ts';
import { bootstrap, meanInterval, wilson, type Estimate } from './intervals.ts';
import { computeMetrics, type Metrics } from './metrics.ts';
import { holdout, leaveOneOut, sampleEpisode, stratifiedGroupKFold } from './splits.ts';
import { protocolLabel } from '../../../shared/estimate-labels.ts';
import type { TtaKind } from '../../../shared/tta.ts';
import type {
  Calibration,
  ClassEstimate,
  CurvePoint,
  EvaluationResult,
  ModelEstimate,
  Prediction,
  Protocol,
} from '../../../shared/results.ts';

export type { ClassEstimate, CurvePoint, EvaluationResult, Prediction, Protocol };

export type { Dataset };

export interface EvaluateOptions {
  strategy: Strategy;
  protocol: Protocol;
  seed?: number;
  /** Keep groups whole across splits (default true when groups are known). */
  groupAware?: boolean;
  fit?: Omit<FitOptions, 'seed' | 'validation'>;
  /** The test-time augmentation whose views `data.views` holds (for the result's label). */
  tta?: TtaKind;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface Unit {
  metrics: Metrics;
  predictions: Prediction[];
  /** Test-time augmentation: each prediction's raw logits per view, over the split's classes. */
  viewLogits?: { views: Float64Array[]; label: number; classMap: number[] }[];
}

function runSplit(
  data: Dataset,
  train: number[],
  test: number[],
  options: EvaluateOptions,
  seed: number,
  classMap?: number[],
): Unit {
  const sub = classMap ?? data.classes.map((_, c) => c);
  const local = new Map(sub.map((c, i) => [c, i]));
  const head = fitHead(
    options.strategy,
    {
      x: train.map((i) => data.x[i] as Vec),
      y: train.map((i) => local.get(data.y[i] as number) as number),
      classes: sub.map((c) => data.classes[c] as string),
    },
    { ...options.fit, seed },
  );
  const viewLogits: NonNullable<Unit['viewLogits']> = [];
  const predictions: Prediction[] = test.map((i) => {
    let pLocal: ArrayLike<number>;
    if (data.views) {
      // Test-time augmentation: the fold's own temperature for now; evaluate() refits it on held-out views.
      const views = (data.views[i] as Vec[]).map((v) => logits(head, v));
      viewLogits.push({ views, label: local.get(data.y[i] as number) ?? -1, classMap: sub });
      pLocal = averageSoftmax(views, head.temperature);
    } else pLocal = predictProba(head, data.x[i] as Vec);
    const probabilities = data.classes.map((_, c) =>
      local.has(c) ? (pLocal[local.get(c) as number] as number) : 0,
    );
    return {
      index: i,
      ...(data.ids ? { id: data.ids[i] } : {}),
      truth: data.y[i] as number,
      predicted: sub[argmax(pLocal)] as number,
      probabilities,
    };
  });
  return {
    predictions,
    ...(data.views ? { viewLogits } : {}),
    metrics: computeMetrics(
      predictions.map((p) => p.truth),
      predictions.map((p) => p.predicted),
      data.classes,
      predictions.map((p) => p.probabilities),
    ),
  };
}

function pooledEstimates(
  data: Dataset,
  preds: Prediction[],
  seed: number,
): Pick<EvaluationResult, 'accuracy' | 'balancedAccuracy' | 'macroF1' | 'rocAucOvr' | 'perClass'> {
  const yT = preds.map((p) => p.truth);
  const yP = preds.map((p) => p.predicted);
  const probs = preds.map((p) => p.probabilities);
  const m = computeMetrics(yT, yP, data.classes, probs);
  const pick = (idx: number[]) =>
    computeMetrics(
      idx.map((i) => yT[i] as number),
      idx.map((i) => yP[i] as number),
      data.classes,
      idx.map((i) => probs[i] as number[]),
    );
  const correct = yT.filter((t, i) => t === yP[i]).length;
  return {
    accuracy: wilson(correct, preds.length),
    balancedAccuracy: bootstrap(preds.length, (idx) => pick(idx).balancedAccuracy, seed),
    macroF1: bootstrap(preds.length, (idx) => pick(idx).macroF1, seed + 1),
    rocAucOvr:
      m.rocAucOvr === null
        ? null
        : bootstrap(preds.length, (idx) => pick(idx).rocAucOvr ?? Number.NaN, seed + 2),
    perClass: m.perClass.map((c, k) => {
      const tp = (m.confusion[k] as number[])[k] as number;
      return {
        class: c.class,
        precision: wilson(tp, c.predicted),
        recall: wilson(tp, c.support),
        f1: bootstrap(preds.length, (idx) => pick(idx).perClass[k]?.f1 ?? 0, seed + 3 + k),
        support: c.support,
      };
    }),
  };
}

/** The wider of two intervals around the first estimate's point. */
function widen(a: Estimate, b: Estimate): Estimate {
  const lo = Math.min(a.ci95[0], b.ci95[0]);
  const hi = Math.max(a.ci95[1], b.ci95[1]);
  return lo < a.ci95[0] || hi > a.ci95[1] ? { ...a, ci95: [lo, hi], floored: true } : a;
}

function meanOf(es: Estimate[], point: number): Estimate {
  const n = es.length || 1;
  return {
    mean: point,
    ci95: [es.reduce((a, e) => a + e.ci95[0], 0) / n, es.reduce((a, e) => a + e.ci95[1], 0) / n],
    method: 'wilson',
    n: es.reduce((a, e) => a + e.n, 0),
  };
}

/**
 * Closed-form Wilson intervals from the pooled confusion matrix (F1 = 2tp / (2tp + fp + fn) treated as a
 * proportion; balanced accuracy and macro-F1 as means of per-class bounds). Every reported interval is
 * widened to at least these, so zero spread across folds, or a perfect split, never gives a zero-width
 * interval.
 */
function floorWithPooledWilson(
  e: Pick<EvaluationResult, 'accuracy' | 'balancedAccuracy' | 'macroF1' | 'rocAucOvr' | 'perClass'>,
  confusion: number[][],
): typeof e {
  const C = confusion.length;
  const n = confusion.flat().reduce((a, b) => a + b, 0);
  const correct = confusion.reduce((a, row, i) => a + (row[i] as number), 0);
  const per = confusion.map((row, k) => {
    const tp = row[k] as number;
    const support = row.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, r) => a + (r[k] as number), 0);
    return {
      tp,
      support,
      predicted,
      recall: wilson(tp, support),
      precision: wilson(tp, predicted),
      f1: wilson(2 * tp, support + predicted),
    };
  });
  const withSupport = per.filter((p) => p.support > 0);
  const occurring = per.filter((p) => p.support > 0 || p.predicted > 0);
  return {
    accuracy: widen(e.accuracy, wilson(correct, n)),
    balancedAccuracy: widen(
      e.balancedAccuracy,
      meanOf(
        withSupport.map((p) => p.recall),
        e.balancedAccuracy.mean,
      ),
    ),
    macroF1: widen(
      e.macroF1,
      meanOf(
        occurring.map((p) => p.f1),
        e.macroF1.mean,
      ),
    ),
    rocAucOvr: e.rocAucOvr,
    perClass: e.perClass.map((c, k) => {
      const p = per[k];
      if (!p || k >= C) return c;
      return {
        ...c,
        precision: p.predicted ? widen(c.precision, p.precision) : c.precision,
        recall: p.support ? widen(c.recall, p.recall) : c.recall,
        f1: p.support + p.predicted ? widen(c.f1, p.f1) : c.f1,
      };
    }),
  };
}

function acrossUnits(
  data: Dataset,
  units: Unit[],
): Pick<EvaluationResult, 'accuracy' | 'balancedAccuracy' | 'macroF1' | 'rocAucOvr' | 'perClass'> {
  const aucs = units.map((u) => u.metrics.rocAucOvr).filter((a): a is number => a !== null);
  return {
    accuracy: meanInterval(units.map((u) => u.metrics.accuracy)),
    balancedAccuracy: meanInterval(units.map((u) => u.metrics.balancedAccuracy)),
    macroF1: meanInterval(units.map((u) => u.metrics.macroF1)),
    rocAucOvr: aucs.length ? meanInterval(aucs) : null,
    perClass: data.classes.map((name, k) => {
      const withSupport = units.filter((u) => (u.metrics.perClass[k]?.support ?? 0) > 0);
      const predicted = units.filter((u) => (u.metrics.perClass[k]?.predicted ?? 0) > 0);
      return {
        class: name,
        precision: meanInterval(predicted.map((u) => u.metrics.perClass[k]?.precision ?? 0)),
        recall: meanInterval(withSupport.map((u) => u.metrics.perClass[k]?.recall ?? 0)),
        f1: meanInterval(withSupport.map((u) => u.metrics.perClass[k]?.f1 ?? 0)),
        support: units.reduce((a, u) => a + (u.metrics.perClass[k]?.support ?? 0), 0),
      };
    }),
  };
}

export interface Split {
  train: number[];
  test: number[];
  /** Episode classes (original indices); all classes when absent. */
  classes?: number[];
  seed: number;
}

/** The splits a protocol asks for, groups kept whole; `pooled` when figures come from pooled predictions. */
export function planSplits(
  y: number[],
  groups: (string | null)[] | null,
  C: number,
  p: Protocol,
  seed: number,
): { splits: Split[]; pooled: boolean } {
  const fromFolds = (fold: number[]): Split[] => {
    const n = Math.max(...fold) + 1;
    const out: Split[] = [];
    for (let f = 0; f < n; f++) {
      const test = fold.map((g, i) => (g === f ? i : -1)).filter((i) => i >= 0);
      const train = fold.map((g, i) => (g !== f ? i : -1)).filter((i) => i >= 0);
      // A fold whose training side has a single class cannot train.
      if (test.length && new Set(train.map((i) => y[i])).size >= 2) out.push({ train, test, seed: seed + f });
    }
    return out;
  };
  switch (p.kind) {
    case 'episodes': {
      const rng = new Rng(seed);
      const splits: Split[] = [];
      for (let tries = 0; splits.length < p.episodes && tries < p.episodes * 5; tries++) {
        const ep = sampleEpisode(
          y,
          groups,
          C,
          {
            shots: p.shots,
            ...(p.ways ? { ways: p.ways } : {}),
            ...(p.queries ? { queries: p.queries } : {}),
          },
          rng,
        );
        if (ep)
          splits.push({ train: ep.support, test: ep.query, classes: ep.classes, seed: seed + splits.length });
      }
      if (!splits.length)
        throw new FewShotError(
          'INVALID_INPUT',
          `Not enough images for ${p.shots}-shot episodes: every class needs at least ${p.shots + 1}.`,
        );
      return { splits, pooled: false };
    }
    case 'kfold':
      if (p.folds < 2) throw new FewShotError('INVALID_INPUT', 'k-fold needs at least 2 folds.');
      return { splits: fromFolds(stratifiedGroupKFold(y, groups, p.folds, seed, C)), pooled: false };
    case 'loo':
      return { splits: fromFolds(leaveOneOut(y, groups)), pooled: true };
    case 'holdout': {
      const h = holdout(y, groups, p.testFraction, seed, C);
      return { splits: [{ ...h, seed }], pooled: true };
    }
  }
}

/** Metrics of one split's predictions. */
export function splitUnit(predictions: Prediction[], classes: string[]): Unit {
  return {
    predictions,
    metrics: computeMetrics(
      predictions.map((p) => p.truth),
      predictions.map((p) => p.predicted),
      classes,
      predictions.map((p) => p.probabilities),
    ),
  };
}

/** Headline figures, intervals and the pooled confusion matrix from the units of an evaluation. */
export function summarize(
  data: Pick<Dataset, 'classes'>,
  run: {
    strategy: EvaluationResult['strategy'];
    protocol: Protocol;
    seed: number;
    groupAware: boolean;
    pooled: boolean;
    splits: Split[];
  },
  units: Unit[],
): EvaluationResult {
  const C = data.classes.length;
  const p = run.protocol;
  if (!units.length)
    throw new FewShotError('INVALID_INPUT', 'No split could be trained: too few images per class.');
  const all = units.flatMap((u) => u.predictions);
  const raw =
    run.pooled || units.length < 2
      ? pooledEstimates(data as Dataset, all, run.seed)
      : acrossUnits(data as Dataset, units);
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  for (const pr of all)
    (confusion[pr.truth] as number[])[pr.predicted] =
      ((confusion[pr.truth] as number[])[pr.predicted] as number) + 1;
  const estimates = floorWithPooledWilson(raw, confusion);
  const lastClasses = run.splits[run.splits.length - 1]?.classes;
  return {
    strategy: run.strategy,
    protocol: p,
    seed: run.seed,
    groupAware: run.groupAware,
    classes: data.classes,
    ways: lastClasses ? lastClasses.length : C,
    shots: p.kind === 'episodes' ? p.shots : null,
    episodes: p.kind === 'episodes' ? units.length : null,
    folds: p.kind === 'kfold' || p.kind === 'loo' ? units.length : null,
    ...estimates,
    confusion,
    predictions: p.kind === 'episodes' ? all.slice(-2000) : all,
    testPredictions: all.length,
    // Every test prediction comes from a head (and a temperature) fitted without it.
    calibration: expectedCalibrationError(
      all.map((pr) => pr.probabilities),
      all.map((pr) => pr.truth),
    ),
  };
}

/**
 * The estimate stored with a model: headline figures, the protocol named in words, and the ECE (the
 * evaluation's own unless one is given; null when no honest one exists).
 */
export function modelEstimate(
  ev: EvaluationResult,
  calibration: Calibration | null | undefined = ev.calibration,
): ModelEstimate {
  return {
    accuracy: ev.accuracy,
    balancedAccuracy: ev.balancedAccuracy,
    macroF1: ev.macroF1,
    protocol: ev.protocol,
    n: ev.testPredictions,
    label: protocolLabel(ev.protocol, ev.testPredictions),
    ...(calibration ? { calibration } : {}),
  };
}

export function evaluate(data: Dataset, options: EvaluateOptions): EvaluationResult {
  const seed = options.seed ?? 0;
  const C = data.classes.length;
  if (C < 2) throw new FewShotError('INVALID_INPUT', 'Evaluation needs at least two classes with images.');
  const groupAware = options.groupAware ?? data.groups !== null;
  const groups = groupAware ? data.groups : null;
  const { splits, pooled } = planSplits(data.y, groups, C, options.protocol, seed);
  const units: Unit[] = [];
  for (const [k, sp] of splits.entries()) {
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Evaluation cancelled.');
    units.push(runSplit(data, sp.train, sp.test, options, sp.seed, sp.classes));
    options.onProgress?.(k + 1, splits.length);
  }
  const tta = data.views ? rescoreViews(data, units) : null;
  const result = summarize(
    data,
    {
      strategy: options.strategy,
      protocol: options.protocol,
      seed,
      groupAware: groups !== null,
      pooled,
      splits,
    },
    units,
  );
  return tta && options.tta
    ? { ...result, tta: { kind: options.tta, views: tta.views, temperature: tta.temperature } }
    : result;
}

/**
 * Test-time augmentation's temperature, fitted the honest way: the units fall into (up to) five blocks,
 * and each block's predictions are re-scored with a temperature fitted on the held-out view logits of
 * the other blocks only. Returns the temperature fitted on every unit's held-out logits (what a model
 * would use on new images) and the number of views.
 */
function rescoreViews(data: Dataset, units: Unit[]): { temperature: number; views: number } {
  const blocks = Math.min(5, units.length);
  const all = units.flatMap((u) => u.viewLogits ?? []);
  const fit = (items: typeof all) =>
    fitTemperatureViews(
      items.filter((v) => v.label >= 0).map((v) => v.views),
      items.filter((v) => v.label >= 0).map((v) => v.label),
    );
  if (blocks >= 2) {
    for (let b = 0; b < blocks; b++) {
      const others = units.filter((_, k) => k % blocks !== b).flatMap((u) => u.viewLogits ?? []);
      const t = fit(others);
      units.forEach((u, k) => {
        if (k % blocks !== b || !u.viewLogits) return;
        u.predictions = u.predictions.map((pr, j) => {
          const v = u.viewLogits?.[j] as (typeof all)[number];
          const pLocal = averageSoftmax(v.views, t);
          const probabilities = data.classes.map((_, c) => {
            const at = v.classMap.indexOf(c);
            return at >= 0 ? (pLocal[at] as number) : 0;
          });
          return { ...pr, predicted: v.classMap[argmax(pLocal)] as number, probabilities };
        });
        u.metrics = computeMetrics(
          u.predictions.map((p) => p.truth),
          u.predictions.map((p) => p.predicted),
          data.classes,
          u.predictions.map((p) => p.probabilities),
        );
      });
    }
  }
  return { temperature: fit(all), views: all[0]?.views.length ?? 1 };
}

/**
 * Shot counts for the learning curve: 1, 2, 5, 10, 20, 50, 100, 200, 500, … up to what the smallest class
 * allows (one image per class stays out as a query), ending at that count itself, so the curve reaches the
 * data the user has.
 */
export function curveShots(maxShots: number): number[] {
  const out: number[] = [];
  for (let decade = 1; decade <= maxShots; decade *= 10)
    for (const m of [1, 2, 5]) if (m * decade <= maxShots) out.push(m * decade);
  const last = out.at(-1);
  if (last !== undefined && maxShots > last * 1.25) out.push(maxShots);
  return out;
}

/** The same metric at increasing shots (curveShots): does labelling more help? */
export function learningCurve(
  data: Dataset,
  options: Omit<EvaluateOptions, 'protocol'> & { shots?: number[]; episodes?: number; queries?: number },
): CurvePoint[] {
  const counts = data.classes.map((_, c) => data.y.filter((y) => y === c).length);
  const maxShots = Math.min(...counts.filter((n) => n > 0)) - 1;
  const out: CurvePoint[] = [];
  for (const shots of options.shots ?? curveShots(maxShots)) {
    if (shots > maxShots) continue;
    // Large episodes cost more and vary less: fewer of them past 20 per class.
    const episodes = options.episodes ?? 50;
    const r = evaluate(data, {
      ...options,
      protocol: {
        kind: 'episodes',
        shots,
        episodes: shots > 20 ? Math.max(5, Math.ceil(episodes / 3)) : episodes,
        ...(options.queries ? { queries: options.queries } : {}),
      },
    });
    out.push({
      shots,
      episodes: r.episodes ?? 0,
      accuracy: r.accuracy,
      balancedAccuracy: r.balancedAccuracy,
      macroF1: r.macroF1,
    });
  }
  return out;
}
