// Limited-memory BFGS with a backtracking (Armijo) line search: deterministic full-batch optimisation
// for the small convex problems of a linear head.

export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  maxIterations?: number;
  memory?: number;
  gradientTolerance?: number;
  /** Called after every iteration with the objective's value (for a live loss chart). */
  onIteration?: (iteration: number, value: number) => void;
}

export function minimize(
  f: Objective,
  x0: Float64Array,
  options: LbfgsOptions = {},
): { x: Float64Array; value: number; iterations: number } {
  const maxIt = options.maxIterations ?? 200;
  const m = options.memory ?? 10;
  const tol = options.gradientTolerance ?? 1e-6;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  let it = 0;
  for (; it < maxIt; it++) {
    let gnorm = 0;
    for (let i = 0; i < n; i++) gnorm = Math.max(gnorm, Math.abs(g[i] as number));
    if (gnorm < tol) break;
    // Two-loop recursion: d = −H·g
    for (let i = 0; i < n; i++) d[i] = -(g[i] as number);
    const alpha: number[] = [];
    for (let k = S.length - 1; k >= 0; k--) {
      let a = 0;
      const s = S[k] as Float64Array;
      const y = Y[k] as Float64Array;
      for (let i = 0; i < n; i++) a += (s[i] as number) * (d[i] as number);
      a *= rho[k] as number;
      alpha[k] = a;
      for (let i = 0; i < n; i++) d[i] = (d[i] as number) - a * (y[i] as number);
    }
    if (S.length) {
      const s = S[S.length - 1] as Float64Array;
      const y = Y[Y.length - 1] as Float64Array;
      let sy = 0;
      let yy = 0;
      for (let i = 0; i < n; i++) {
        sy += (s[i] as number) * (y[i] as number);
        yy += (y[i] as number) * (y[i] as number);
      }
      const gamma = sy / yy;
      for (let i = 0; i < n; i++) d[i] = (d[i] as number) * gamma;
    }
    for (let k = 0; k < S.length; k++) {
      const s = S[k] as Float64Array;
      const y = Y[k] as Float64Array;
      let b = 0;
      for (let i = 0; i < n; i++) b += (y[i] as number) * (d[i] as number);
      b *= rho[k] as number;
      const a = alpha[k] as number;
      for (let i = 0; i < n; i++) d[i] = (d[i] as number) + (a - b) * (s[i] as number);
    }
    let dg = 0;
    for (let i = 0; i < n; i++) dg += (d[i] as number) * (g[i] as number);
    if (dg >= 0) {
      // Not a descent direction: restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -(g[i] as number);
      dg = 0;
      for (let i = 0; i < n; i++) dg -= (g[i] as number) * (g[i] as number);
    }
    let step = it === 0 && S.length === 0 ? Math.min(1, 1 / Math.sqrt(-dg)) : 1;
    const xNew = new Float64Array(n);
    const gNew = new Float64Array(n);
    let fNew = Infinity;
    for (let ls = 0; ls < 40; ls++) {
      for (let i = 0; i < n; i++) xNew[i] = (x[i] as number) + step * (d[i] as number);
      fNew = f(xNew, gNew);
      if (fNew <= fx + 1e-4 * step * dg) break;
      step *= 0.5;
    }
    if (!(fNew < fx) && !(fNew <= fx + 1e-4 * step * dg)) break;
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    let sy = 0;
    for (let i = 0; i < n; i++) {
      s[i] = (xNew[i] as number) - (x[i] as number);
      y[i] = (gNew[i] as number) - (g[i] as number);
      sy += (s[i] as number) * (y[i] as number);
    }
    const improvement = fx - fNew;
    x = xNew;
    g = gNew;
    fx = fNew;
    options.onIteration?.(it + 1, fx);
    if (sy > 1e-12) {
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
      if (S.length > m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    if (improvement < 1e-12 * Math.max(1, Math.abs(fx))) break;
  }
  return { x, value: fx, iterations: it };
}
