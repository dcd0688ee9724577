// Classification metrics, defined for the awkward cases small data produces: a class with no test images,
// a class never predicted, a fold with one class. Conventions follow scikit-learn (zero_division = 0).

export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
  /** Times the class was predicted. */
  predicted: number;
}

export interface Metrics {
  n: number;
  accuracy: number;
  /** Mean recall over classes with at least one true example. */
  balancedAccuracy: number;
  /** Mean F1 over classes that occur in the truth or the predictions. */
  macroF1: number;
  perClass: ClassMetrics[];
  /** confusion[true][predicted] */
  confusion: number[][];
  /** One-vs-rest ROC AUC, macro-averaged over classes with positives and negatives; null when none. */
  rocAucOvr: number | null;
  perClassAuc: (number | null)[];
}

export function confusionMatrix(yTrue: number[], yPred: number[], C: number): number[][] {
  const m = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  yTrue.forEach((t, i) => {
    const row = m[t] as number[];
    const p = yPred[i] as number;
    row[p] = (row[p] as number) + 1;
  });
  return m;
}

/** Area under the ROC curve by the Mann–Whitney statistic, ties counted as one half. */
export function rocAuc(scores: number[], positive: boolean[]): number | null {
  const idx = scores.map((s, i) => ({ s, p: positive[i] as boolean })).sort((a, b) => a.s - b.s);
  const nPos = idx.filter((e) => e.p).length;
  const nNeg = idx.length - nPos;
  if (nPos === 0 || nNeg === 0) return null;
  let rankSum = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j < idx.length && (idx[j] as { s: number }).s === (idx[i] as { s: number }).s) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if ((idx[k] as { p: boolean }).p) rankSum += avgRank;
    i = j;
  }
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** The ROC curve's points for one class against the rest (for the two-class review plot). */
export function rocCurve(
  scores: number[],
  positive: boolean[],
): { fpr: number; tpr: number; threshold: number }[] {
  const nPos = positive.filter(Boolean).length;
  const nNeg = positive.length - nPos;
  const order = scores.map((s, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  const points = [{ fpr: 0, tpr: 0, threshold: Infinity }];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k] as number;
    if (positive[i]) tp++;
    else fp++;
    const next = order[k + 1];
    if (next === undefined || scores[next] !== scores[i]) {
      points.push({ fpr: nNeg ? fp / nNeg : 0, tpr: nPos ? tp / nPos : 0, threshold: scores[i] as number });
    }
  }
  return points;
}

export function computeMetrics(
  yTrue: number[],
  yPred: number[],
  classes: string[],
  probabilities?: ArrayLike<number>[],
): Metrics {
  const C = classes.length;
  const confusion = confusionMatrix(yTrue, yPred, C);
  const n = yTrue.length;
  const correct = yTrue.filter((t, i) => t === yPred[i]).length;
  const perClass: ClassMetrics[] = classes.map((name, c) => {
    const tp = (confusion[c] as number[])[c] as number;
    const support = (confusion[c] as number[]).reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + (row[c] as number), 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: name, precision, recall, f1, support, predicted };
  });
  const withSupport = perClass.filter((m) => m.support > 0);
  const occurring = perClass.filter((m) => m.support > 0 || m.predicted > 0);
  const perClassAuc = classes.map((_, c) =>
    probabilities
      ? rocAuc(
          probabilities.map((p) => p[c] as number),
          yTrue.map((t) => t === c),
        )
      : null,
  );
  const aucs = perClassAuc.filter((a): a is number => a !== null);
  return {
    n,
    accuracy: n ? correct / n : 0,
    balancedAccuracy: withSupport.length
      ? withSupport.reduce((a, m) => a + m.recall, 0) / withSupport.length
      : 0,
    macroF1: occurring.length ? occurring.reduce((a, m) => a + m.f1, 0) / occurring.length : 0,
    perClass,
    confusion,
    rocAucOvr: aucs.length ? aucs.reduce((a, b) => a + b, 0) / aucs.length : null,
    perClassAuc,
  };
}
