// NumPy .npy files for tests, independent of the app's own writer: float32 ('<f4') arrays of any shape,
// C order, format 1.0 (read: 1.0 and 2.0).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { npyBytes } from '../../src/main/engine/export/npy.ts';

export interface Npy {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Where the data starts: the header's end. */
  dataOffset: number;
  data: Float32Array;
}

export function readNpy(file: string): Npy {
  const b = fs.readFileSync(file);
  assert.equal(b.subarray(0, 6).toString('latin1'), '\x93NUMPY', `${file}: the .npy magic`);
  const major = b[6] as number;
  assert.ok(major === 1 || major === 2, `${file}: format version ${major}`);
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.subarray(start, start + headerLen).toString('latin1');
  assert.ok(header.endsWith('\n'), `${file}: the header ends with a newline`);
  assert.equal((start + headerLen) % 16, 0, `${file}: the data is aligned`);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? '';
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  assert.equal(descr, '<f4', `${file}: float32, little-endian`);
  const dataOffset = start + headerLen;
  const count = shape.reduce((a, n) => a * n, 1);
  assert.equal(b.length - dataOffset, count * 4, `${file}: the data is exactly shape × 4 bytes`);
  const data = new Float32Array(count);
  const view = new DataView(b.buffer, b.byteOffset + dataOffset, count * 4);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
  return { descr, fortranOrder: fortran === 'True', shape, dataOffset, data };
}

export function writeNpy(file: string, shape: number[], data: Float32Array): void {
  fs.writeFileSync(file, npyBytes(shape, data));
}
