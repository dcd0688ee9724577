// Number formats shared by the PDF reports and the model card. A figure that is not exactly perfect
// (or exactly zero) never reads as 100 % (or 0 %): a reader takes "100 %" as "no errors at all".

import { AugmentSpecSchema, DEFAULT_AUGMENT, describeAugment } from '../../../shared/augment.ts';

/** Extra decimals tried before a near-1 (near-0) figure is cut down (up) instead of rounded. */
const EXTRA_DIGITS = 2;

/**
 * `v` (on a scale whose ends are 0 and `top`) with `digits` decimals, adding decimals where rounding
 * would reach an end the value does not, and truncating towards the middle after that.
 */
function fixedAwayFromEnds(v: number, top: number, digits: number): string {
  if (!Number.isFinite(v)) return '—';
  for (let d = digits; d <= digits + EXTRA_DIGITS; d++) {
    const s = v.toFixed(d);
    const r = Number(s);
    if ((r < top || v >= top) && (r > 0 || v <= 0)) return s;
  }
  const d = digits + EXTRA_DIGITS;
  const f = 10 ** d;
  return (v >= top / 2 ? Math.floor(v * f) / f : Math.ceil(v * f) / f).toFixed(d);
}

/** A share as a percentage number without the unit: 0.995 → "99.5", 0.9996 → "99.96". */
export function pctNumber(x: number, digits = 1): string {
  return fixedAwayFromEnds(x * 100, 100, digits);
}

/** A share as a percentage: 0.993 → "99.3 %"; never "100 %" unless exactly 1. */
export function pct(x: number, digits = 1): string {
  return `${pctNumber(x, digits)} %`;
}

/** A score between 0 and 1 (ROC AUC) with three decimals; never "1.000" unless exactly 1. */
export function score(x: number, digits = 3): string {
  return fixedAwayFromEnds(x, 1, digits);
}

/** A difference of two shares in percentage points: 0.046 → "4.6". */
export function points(x: number): string {
  return (x * 100).toFixed(1);
}

/**
 * `text` cut in its middle with "…" until `fits` accepts it, its beginning and end kept (a file name keeps
 * its extension): "Neutrophil-ba…nd-form.png".
 */
export function shortenMiddle(text: string, fits: (s: string) => boolean): string {
  if (fits(text)) return text;
  const chars = Array.from(text);
  for (let keep = chars.length - 1; keep >= 1; keep--) {
    const tail = Math.floor(keep / 2);
    const s = `${chars.slice(0, keep - tail).join('')}…${tail ? chars.slice(-tail).join('') : ''}`;
    if (fits(s)) return s;
  }
  return '…';
}

/**
 * A path shortened in the middle to fit `fits`, keeping its first folder and the file name whole:
 * "run-12/…/slide 3/cell 7.png". The file name itself is cut in its middle only when `…/name` does not fit.
 */
export function shortenPath(relPath: string, fits: (s: string) => boolean): string {
  if (fits(relPath)) return relPath;
  const parts = relPath.split('/');
  const name = parts.pop() as string;
  if (!parts.length) return shortenMiddle(name, fits);
  // Drop folders from the middle outwards until it fits; the first folder goes last.
  const head = parts.slice(0, 1);
  const rest = parts.slice(1);
  while (rest.length) {
    rest.splice(Math.floor(rest.length / 2), 1);
    const s = [...head, '…', ...rest, name].join('/');
    if (fits(s)) return s;
  }
  // Then shorten the first folder itself from its end, keeping at least a few characters.
  const first = head[0] as string;
  for (let n = first.length - 1; n >= 3; n--) {
    const s = `${first.slice(0, n)}…/${name}`;
    if (fits(s)) return s;
  }
  return fits(`…/${name}`) ? `…/${name}` : `…/${shortenMiddle(name, (n) => fits(`…/${n}`))}`;
}

/**
 * `text` as lines that each satisfy `fits`, broken only after a "/" (so no word is split), or null when
 * that takes more than `max` lines or one piece alone does not fit.
 */
export function linesAtSlashes(text: string, fits: (line: string) => boolean, max: number): string[] | null {
  const lines: string[] = [];
  let line = '';
  for (const piece of text.split(/(?<=\/)/)) {
    if (fits(line + piece)) {
      line += piece;
      continue;
    }
    if (!line || !fits(piece)) return null;
    lines.push(line);
    line = piece;
  }
  lines.push(line);
  return lines.length <= max ? lines : null;
}

/**
 * One training setting as the report's table shows it: numbers to 4 significant digits, the augmentation
 * and the per-epoch history in words, the placement as a count, other structures as compact JSON (never
 * "[object Object]"), null as "none".
 */
export function formatSetting(key: string, value: unknown): string {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'number') return String(Number(value.toPrecision(4)));
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value !== 'object') return typeof value;
  const fields = value as Record<string, unknown>;
  // The augmentation only when every field was recorded (a schema default would claim an unrecorded one).
  if (key === 'augment' && Object.keys(DEFAULT_AUGMENT).every((k) => k in fields)) {
    const parsed = AugmentSpecSchema.safeParse(value);
    if (parsed.success) return describeAugment(parsed.data);
  }
  if (key === 'history' && Array.isArray(value))
    return (value as unknown[])
      .map((h, i) => {
        const e = (h && typeof h === 'object' ? h : {}) as Record<string, unknown>;
        const n = typeof e.epoch === 'number' ? e.epoch : i + 1;
        const loss = typeof e.loss === 'number' ? `loss ${e.loss.toFixed(3)}` : 'no loss recorded';
        const acc =
          typeof e.validationAccuracy === 'number' ? `, validation ${pct(e.validationAccuracy)}` : '';
        return `${n}: ${loss}${acc}`;
      })
      .join('; ');
  if (
    key === 'placement' &&
    typeof fields.provider === 'string' &&
    typeof fields.nodes === 'number' &&
    typeof fields.cpuNodes === 'number'
  )
    return `${fields.provider}: ${fields.nodes} nodes, ${fields.cpuNodes} of them on the CPU`;
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null))
    return value.length ? value.map((v) => String(v)).join(', ') : 'none';
  const json = JSON.stringify(value);
  return json.length > 400 ? `${json.slice(0, 399)}…` : json;
}
