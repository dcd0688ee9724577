// Splits that respect groups (patient, slide, source image): a group never straddles train and test.
// Stratified k-fold, leave-one-(group-)out, a single hold-out split, and few-shot episodes.

import { Rng } from '../random.ts';

/** Units of assignment: one per group, and one per image that has no group. */
function units(y: number[], groups: (string | null)[] | null): number[][] {
  const byGroup = new Map<string, number[]>();
  const out: number[][] = [];
  y.forEach((_, i) => {
    const g = groups?.[i] ?? null;
    if (g === null) out.push([i]);
    else {
      const list = byGroup.get(g);
      if (list) list.push(i);
      else {
        const l = [i];
        byGroup.set(g, l);
        out.push(l);
      }
    }
  });
  return out;
}

/**
 * Fold index per sample: groups are kept whole and spread so that each fold's class mix is close to the
 * whole set's (a greedy StratifiedGroupKFold). Deterministic for a seed.
 */
export function stratifiedGroupKFold(
  y: number[],
  groups: (string | null)[] | null,
  k: number,
  seed: number,
  C?: number,
): number[] {
  const nClasses = C ?? Math.max(...y) + 1;
  const rng = new Rng(seed);
  const us = rng.shuffle(units(y, groups));
  // Largest, most class-skewed units first, as scikit-learn does; the shuffle breaks ties.
  const hist = (u: number[]): number[] => {
    const h = new Array<number>(nClasses).fill(0);
    for (const i of u) h[y[i] as number] = (h[y[i] as number] as number) + 1;
    return h;
  };
  const order = us
    .map((u, idx) => ({ u, h: hist(u), idx }))
    .sort((a, b) => b.u.length - a.u.length || a.idx - b.idx);
  const totals = hist(y.map((_, i) => i));
  const counts = Array.from({ length: k }, () => new Array<number>(nClasses).fill(0));
  const sizes = new Array<number>(k).fill(0);
  const fold = new Array<number>(y.length).fill(0);
  for (const { u, h } of order) {
    let best = 0;
    let bestCost = Infinity;
    for (let f = 0; f < k; f++) {
      // Change in Σ_c (count_fc − t_c/k)² / t_c if the unit joins fold f: most negative where it fills a gap.
      let cost = 0;
      for (let c = 0; c < nClasses; c++) {
        const t = totals[c] as number;
        const hc = h[c] as number;
        if (t === 0 || hc === 0) continue;
        const dev = ((counts[f] as number[])[c] as number) - t / k;
        cost += (2 * hc * dev + hc * hc) / t;
      }
      if (
        cost < bestCost - 1e-12 ||
        (Math.abs(cost - bestCost) <= 1e-12 && (sizes[f] as number) < (sizes[best] as number))
      ) {
        best = f;
        bestCost = cost;
      }
    }
    for (const i of u) fold[i] = best;
    for (let c = 0; c < nClasses; c++)
      (counts[best] as number[])[c] = ((counts[best] as number[])[c] as number) + (h[c] as number);
    sizes[best] = (sizes[best] as number) + u.length;
  }
  return fold;
}

/** Leave-one-out: one fold per image, or per group when groups are known. */
export function leaveOneOut(y: number[], groups: (string | null)[] | null): number[] {
  const fold = new Array<number>(y.length).fill(0);
  units(y, groups).forEach((u, f) => u.forEach((i) => (fold[i] = f)));
  return fold;
}

export function holdout(
  y: number[],
  groups: (string | null)[] | null,
  testFraction: number,
  seed: number,
  C?: number,
): { train: number[]; test: number[] } {
  const k = Math.max(2, Math.round(1 / testFraction));
  const fold = stratifiedGroupKFold(y, groups, k, seed, C);
  return {
    train: y.map((_, i) => i).filter((i) => fold[i] !== 0),
    test: y.map((_, i) => i).filter((i) => fold[i] === 0),
  };
}

export interface Episode {
  classes: number[];
  support: number[];
  query: number[];
}

export interface EpisodeOptions {
  shots: number;
  /** Classes per episode; all classes that have enough images when omitted. */
  ways?: number;
  /** Queries per class (default 15). */
  queries?: number;
}

/**
 * One few-shot episode: `shots` support images per class, queries from the rest. With groups, queries
 * come only from groups that have no support image, so nothing of a support image's patient leaks.
 */
export function sampleEpisode(
  y: number[],
  groups: (string | null)[] | null,
  C: number,
  opts: EpisodeOptions,
  rng: Rng,
): Episode | null {
  const q = opts.queries ?? 15;
  const byClass = Array.from({ length: C }, () => [] as number[]);
  y.forEach((c, i) => (byClass[c] as number[]).push(i));
  const eligible = byClass
    .map((l, c) => ({ c, n: l.length }))
    .filter((e) => e.n >= opts.shots + 1)
    .map((e) => e.c);
  const ways = Math.min(opts.ways ?? eligible.length, eligible.length);
  if (ways < 2) return null;
  const classes = rng
    .shuffle([...eligible])
    .slice(0, ways)
    .sort((a, b) => a - b);
  const support: number[] = [];
  for (const c of classes) support.push(...rng.shuffle([...(byClass[c] as number[])]).slice(0, opts.shots));
  const inSupport = new Set(support);
  const supportGroups = new Set(
    support.map((i) => groups?.[i] ?? null).filter((g): g is string => g !== null),
  );
  const query: number[] = [];
  for (const c of classes) {
    const candidates = (byClass[c] as number[]).filter(
      (i) => !inSupport.has(i) && !supportGroups.has(groups?.[i] ?? '\u0000none'),
    );
    query.push(...rng.shuffle(candidates).slice(0, q));
  }
  if (query.length === 0) return null;
  return { classes, support, query };
}
