// Embedding files: a CSV (`path,label,group[,excluded],f0,…`) or a NumPy v1.0 .npy ('<f4', shape (N, D),
// C order) with its rows sidecar (`index,path,label,group[,excluded]`). Every file is written through
// AtomicFile and published only once all of them are whole; a cancel or an error leaves none behind.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { embeddingFormatOf, embeddingRowsFile, type EmbeddingFormat } from '../../../shared/embeddings.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { AtomicFile } from '../atomic-file.ts';
import { csvField } from '../import/csv.ts';
import { npyPreamble } from './npy.ts';

export interface EmbeddingRow {
  /** Relative to the import root or the exported folder, forward slashes. */
  path: string;
  label: string | null;
  group: string | null;
  excluded: boolean;
}

export interface EmbeddingOutput {
  format: EmbeddingFormat;
  out: string;
  rowsFile: string | null;
  /** Every file the export writes. */
  files: string[];
}

/** The files an output path names; INVALID_INPUT for an extension other than .csv and .npy. */
export function embeddingOutput(out: string): EmbeddingOutput {
  const format = embeddingFormatOf(out);
  if (!format)
    throw new FewShotError(
      'INVALID_INPUT',
      `The embeddings file must end in .csv or .npy (got "${path.basename(out)}").`,
    );
  const abs = path.resolve(out);
  const rowsFile = format === 'npy' ? embeddingRowsFile(abs) : null;
  return { format, out: abs, rowsFile, files: rowsFile ? [abs, rowsFile] : [abs] };
}

/** ALREADY_EXISTS for a file that is there, unless `force`; a folder in the way is never overwritten. */
export function assertOutputFree(output: EmbeddingOutput, force: boolean): void {
  for (const f of output.files) {
    const st = fs.statSync(f, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) throw new FewShotError('INVALID_INPUT', `${f} is a folder, not a file.`);
    if (!force)
      throw new FewShotError(
        'ALREADY_EXISTS',
        `${f} already exists: choose another path, or ask to overwrite it (--force).`,
      );
  }
}

/**
 * A float32 in 9 significant digits — enough for any float32 to parse back to the same value — without
 * the mantissa's trailing zeros (1.50000000 → 1.5, 0 → 0).
 */
export function formatFloat32(v: number): string {
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  const s = v.toPrecision(9);
  const e = s.indexOf('e');
  const mantissa = e < 0 ? s : s.slice(0, e);
  const trimmed = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
  return e < 0 ? trimmed : `${trimmed}${s.slice(e)}`;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

function littleEndian(v: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeFloatLE(x, i * 4));
  return b;
}

export interface WriteEmbeddingsOptions {
  /** Adds the `excluded` column (1 or 0). */
  includeExcluded?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Buffers small strings into fewer writes. */
class TextSink {
  private buf = '';
  constructor(private readonly file: AtomicFile) {}
  add(s: string): void {
    this.buf += s;
    if (this.buf.length > 1 << 16) this.flush();
  }
  flush(): void {
    if (this.buf) this.file.write(this.buf);
    this.buf = '';
  }
}

/**
 * Writes `rows` and their vectors (`vectorAt(i)`, `dim` values each) to the output's files; returns the
 * bytes written. The vectors are asked for one at a time, so a large export need not sit in memory.
 */
export function writeEmbeddings(
  output: EmbeddingOutput,
  rows: readonly EmbeddingRow[],
  vectorAt: (i: number) => Float32Array,
  dim: number,
  options: WriteEmbeddingsOptions = {},
): { bytes: number } {
  const meta = ['path', 'label', 'group', ...(options.includeExcluded ? ['excluded'] : [])];
  const metaOf = (r: EmbeddingRow): string[] => [
    csvField(r.path),
    csvField(r.label),
    csvField(r.group),
    ...(options.includeExcluded ? [r.excluded ? '1' : '0'] : []),
  ];
  const vector = (i: number): Float32Array => {
    const v = vectorAt(i);
    if (v.length !== dim)
      throw new FewShotError('INTERNAL', `Row ${i} has ${v.length} features; the export has ${dim}.`);
    return v;
  };
  const files: AtomicFile[] = [];
  try {
    const main = AtomicFile.create(output.out);
    files.push(main);
    const sidecar = output.rowsFile ? AtomicFile.create(output.rowsFile) : null;
    if (sidecar) files.push(sidecar);
    const text = new TextSink(output.format === 'csv' ? main : (sidecar as AtomicFile));
    if (output.format === 'csv')
      text.add(`${[...meta, ...Array.from({ length: dim }, (_, j) => `f${j}`)].join(',')}\n`);
    else {
      text.add(`index,${meta.join(',')}\n`);
      main.write(npyPreamble([rows.length, dim]));
    }
    for (let i = 0; i < rows.length; i++) {
      if (i % 256 === 0) {
        if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'The export was cancelled.');
        options.onProgress?.(i, rows.length);
      }
      const v = vector(i);
      const r = rows[i] as EmbeddingRow;
      if (output.format === 'csv') {
        const values = new Array<string>(dim);
        for (let j = 0; j < dim; j++) values[j] = formatFloat32(v[j] as number);
        text.add(`${metaOf(r).join(',')},${values.join(',')}\n`);
      } else {
        main.write(littleEndian(v));
        text.add(`${i},${metaOf(r).join(',')}\n`);
      }
    }
    text.flush();
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'The export was cancelled.');
    let bytes = 0;
    // Published together: the .npy and the sidecar that names its rows.
    while (files.length) {
      bytes += (files[0] as AtomicFile).commit().bytes;
      files.shift();
    }
    options.onProgress?.(rows.length, rows.length);
    return { bytes };
  } catch (e) {
    for (const f of files) f.abort();
    throw e;
  }
}
