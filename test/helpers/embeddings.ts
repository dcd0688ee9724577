// Exported embeddings read back: the CSV as rows of fields, the .npy through numpy itself where the
// system's python3 has it (else a skip reason, printed loudly).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { parseCsv } from '../../src/main/engine/import/csv.ts';

/** The CSV's header and rows, each a list of fields. */
export function readCsv(file: string): { header: string[]; rows: string[][] } {
  const [header, ...rows] = parseCsv(fs.readFileSync(file, 'utf8'));
  return { header: header ?? [], rows };
}

const PYTHON = '/usr/bin/python3';

/** False when numpy can be imported by the system's python3, else why not. */
export function numpySkip(): string | false {
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  if (r.status === 0) return false;
  const why = `numpy is not importable by ${PYTHON} (apt-get install -y python3-numpy)`;
  console.warn(`\n*** ${why}: the numpy.load checks are SKIPPED ***\n`);
  return why;
}

/** numpy.load's view of a file: dtype, shape, C-contiguity and every value (as exact doubles). */
export function numpyLoad(file: string): { dtype: string; shape: number[]; c: boolean; values: number[] } {
  const script = [
    'import json, sys, numpy',
    'a = numpy.load(sys.argv[1], allow_pickle=False)',
    "print(json.dumps({'dtype': a.dtype.str, 'shape': list(a.shape), 'c': bool(a.flags['C_CONTIGUOUS']), 'values': a.ravel().astype('float64').tolist()}))",
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { dtype: string; shape: number[]; c: boolean; values: number[] };
}

/** numpy's reading of the CSV's feature columns (`numpy.loadtxt`, float32), row-major. */
export function numpyLoadCsvFeatures(file: string, firstFeatureColumn: number): number[] {
  const script = [
    'import json, sys, numpy',
    'with open(sys.argv[1]) as f:',
    '    cols = len(f.readline().split(","))',
    'a = numpy.loadtxt(sys.argv[1], delimiter=",", skiprows=1, dtype=numpy.float32, usecols=range(int(sys.argv[2]), cols), ndmin=2)',
    "print(json.dumps(a.ravel().astype('float64').tolist()))",
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', script, file, String(firstFeatureColumn)], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as number[];
}
