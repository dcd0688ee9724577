// 95 % intervals for figures from tiny test sets: Wilson for a proportion from one split, Student's t
// across episodes or folds, and a seeded percentile bootstrap for pooled figures that are not proportions.

import { Rng } from '../random.ts';
import type { Estimate } from '../../../shared/results.ts';

export type { Estimate };

const Z = 1.959963984540054;

export function wilson(successes: number, n: number): Estimate {
  if (n === 0) return { mean: 0, ci95: [0, 1], method: 'wilson', n };
  const p = successes / n;
  const denom = 1 + (Z * Z) / n;
  const centre = (p + (Z * Z) / (2 * n)) / denom;
  const half = (Z * Math.sqrt((p * (1 - p)) / n + (Z * Z) / (4 * n * n))) / denom;
  // At 0 or n successes the bound is exactly 0 or 1; computing it would leave rounding dust.
  const lo = successes === 0 ? 0 : Math.max(0, centre - half);
  const hi = successes === n ? 1 : Math.min(1, centre + half);
  return { mean: p, ci95: [lo, hi], method: 'wilson', n };
}

/** Two-sided 97.5 % quantile of Student's t with df degrees of freedom. */
export function tQuantile975(df: number): number {
  const table = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
    2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
  ];
  if (df < 1) return Infinity;
  if (df <= table.length) return table[df - 1] as number;
  // Cornish–Fisher expansion beyond the table (accurate to ~1e-4 for df > 30).
  const g1 = (Z ** 3 + Z) / 4;
  const g2 = (5 * Z ** 5 + 16 * Z ** 3 + 3 * Z) / 96;
  return Z + g1 / df + g2 / (df * df);
}

/** Mean with a t interval, for per-episode or per-fold values; clipped to [lo, hi]. */
export function meanInterval(values: number[], lo = 0, hi = 1): Estimate {
  const n = values.length;
  if (n === 0) return { mean: 0, ci95: [lo, hi], method: 'none', n };
  const m = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean: m, ci95: [lo, hi], method: 'none', n };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (n - 1));
  const half = tQuantile975(n - 1) * (sd / Math.sqrt(n));
  return { mean: m, ci95: [Math.max(lo, m - half), Math.min(hi, m + half)], method: 't', n };
}

/** Percentile bootstrap of a statistic over resampled indices (seeded, so reruns agree). */
export function bootstrap(
  n: number,
  statistic: (indices: number[]) => number,
  seed = 0,
  resamples = 1000,
): Estimate {
  const point = statistic(Array.from({ length: n }, (_, i) => i));
  if (n < 2) return { mean: point, ci95: [0, 1], method: 'none', n };
  const rng = new Rng(seed ^ 0x5eed);
  const stats: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const idx = Array.from({ length: n }, () => rng.int(n));
    stats.push(statistic(idx));
  }
  stats.sort((a, b) => a - b);
  return {
    mean: point,
    ci95: [stats[Math.floor(0.025 * resamples)] as number, stats[Math.ceil(0.975 * resamples) - 1] as number],
    method: 'bootstrap',
    n,
  };
}
