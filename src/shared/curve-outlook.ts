// What the learning curve says about labelling another round, in one sentence: the rise over the last
// doublings of images per class, extended one more doubling on a log scale, and said as an extrapolation.

import type { CurvePoint } from './results.ts';

export interface CurveOutlook {
  /** Images per class at the curve's last point. */
  shots: number;
  /** Expected gain in accuracy points from doubling the images per class (≥ 0), or null with one point. */
  gainPoints: number | null;
  sentence: string;
}

function points(v: number): string {
  return `${v < 0.95 ? v.toFixed(1) : v.toFixed(0)} point${Math.abs(v - 1) < 0.05 ? '' : 's'}`;
}

export function curveOutlook(curve: CurvePoint[]): CurveOutlook | null {
  const pts = [...curve].sort((a, b) => a.shots - b.shots);
  const last = pts.at(-1);
  if (!last) return null;
  if (pts.length < 2)
    return {
      shots: last.shots,
      gainPoints: null,
      sentence: `Only one point on the curve (${last.shots} per class): label more to see whether more helps.`,
    };
  // Accuracy against log2(shots) over the last three points: the slope is points per doubling.
  const tail = pts.slice(-3);
  const xs = tail.map((p) => Math.log2(p.shots));
  const ys = tail.map((p) => p.accuracy.mean * 100);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const slope = sxx > 0 ? xs.reduce((a, x, i) => a + (x - mx) * ((ys[i] as number) - my), 0) / sxx : 0;
  const headroom = 100 - last.accuracy.mean * 100;
  const gain = Math.max(0, Math.min(slope, headroom));
  const halfWidth = ((last.accuracy.ci95[1] - last.accuracy.ci95[0]) / 2) * 100;
  const next = last.shots * 2;
  let sentence: string;
  if (gain < 0.5 || gain < halfWidth / 2)
    sentence = `The curve has levelled off at ${last.shots} per class: doubling to ${next} per class is expected to add less than ${points(Math.max(0.5, halfWidth / 2))}. More images of the kinds it gets wrong may help more than more of the same.`;
  else
    sentence = `Still rising: doubling to ${next} images per class is expected to add about ${points(gain)} of accuracy (extended from the last points of the curve; an extrapolation, not a promise).`;
  return { shots: last.shots, gainPoints: gain, sentence };
}
