// DICOM (single-frame 2D, or the first frame of a multi-frame object), uncompressed transfer syntaxes:
// stored values (Bits Stored, Pixel Representation) → Modality LUT (slope, intercept) → VOI (window from
// the file, else the full range) → MONOCHROME1 inverted → 8-bit. Patient identifiers are never kept: the
// patient becomes an opaque hashed group key, so splits keep one patient on one side.

import crypto from 'node:crypto';
import dicomParser from 'dicom-parser';
import { ImageError } from './decode-error.ts';

const SUPPORTED = new Map([
  ['1.2.840.10008.1.2', 'little'],
  ['1.2.840.10008.1.2.1', 'little'],
  ['1.2.840.10008.1.2.2', 'big'],
] as const);

export function isDicom(b: Uint8Array): boolean {
  return b.length >= 132 && b[128] === 0x44 && b[129] === 0x49 && b[130] === 0x43 && b[131] === 0x4d;
}

export interface DicomImage {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
  frames: number;
}

function parse(bytes: Uint8Array): dicomParser.DataSet {
  try {
    return dicomParser.parseDicom(bytes);
  } catch (e) {
    // dicom-parser throws strings or { exception, dataSet } objects as well as Errors.
    const why =
      e instanceof Error
        ? e.message
        : typeof e === 'object' && e !== null && 'exception' in e
          ? String(e.exception)
          : String(e);
    throw new ImageError('CORRUPT_IMAGE', `The DICOM file is damaged: ${why.slice(0, 160)}`);
  }
}

/** Size and frames from the header, with the transfer syntax checked. */
export function probeDicom(bytes: Uint8Array): { width: number; height: number; frames: number } {
  const ds = parse(bytes);
  checkSyntax(ds);
  const width = ds.uint16('x00280011') ?? 0;
  const height = ds.uint16('x00280010') ?? 0;
  if (!width || !height || !ds.elements.x7fe00010)
    throw new ImageError(
      'CORRUPT_IMAGE',
      'The DICOM file has no image (rows, columns or pixel data missing).',
    );
  return { width, height, frames: ds.intString('x00280008') ?? 1 };
}

function checkSyntax(ds: dicomParser.DataSet): 'little' | 'big' {
  const uid = (ds.string('x00020010') ?? '1.2.840.10008.1.2').replace(/\0/g, '').trim();
  const endian = SUPPORTED.get(uid as never);
  if (!endian)
    throw new ImageError(
      'UNSUPPORTED_IMAGE',
      `Compressed DICOM (transfer syntax ${uid}) cannot be decoded here; export it uncompressed.`,
    );
  return endian;
}

/** An opaque group key for the patient (or, without PatientID, the study); null when neither is present. */
export function dicomGroupKey(bytes: Uint8Array): string | null {
  if (!isDicom(bytes)) return null;
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  } catch {
    return null;
  }
  const patient = ds.string('x00100020')?.trim();
  const study = ds.string('x0020000d')?.trim();
  const id = patient ? `patient:${patient}` : study ? `study:${study}` : null;
  return id ? `dicom-${crypto.createHash('sha256').update(id).digest('hex').slice(0, 16)}` : null;
}

export function decodeDicom(bytes: Uint8Array, frame = 0): DicomImage {
  const ds = parse(bytes);
  const endian = checkSyntax(ds);
  const { width, height, frames } = probeDicom(bytes);
  const samples = ds.uint16('x00280002') ?? 1;
  const bitsAllocated = ds.uint16('x00280100') ?? 16;
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const photometric = (ds.string('x00280004') ?? 'MONOCHROME2').trim();
  const el = ds.elements.x7fe00010 as dicomParser.Element;
  if (el.encapsulatedPixelData)
    throw new ImageError(
      'UNSUPPORTED_IMAGE',
      'Encapsulated (compressed) DICOM pixel data cannot be decoded here.',
    );
  const n = width * height;
  if (samples === 3) {
    if (bitsAllocated !== 8 || photometric !== 'RGB' || (ds.uint16('x00280006') ?? 0) !== 0)
      throw new ImageError(
        'UNSUPPORTED_IMAGE',
        `Colour DICOM (${photometric}, ${bitsAllocated}-bit, planar ${ds.uint16('x00280006') ?? 0}) is not supported.`,
      );
    const start = el.dataOffset + frame * n * 3;
    return {
      width,
      height,
      channels: 3,
      pixels: Uint8Array.from(ds.byteArray.subarray(start, start + n * 3)),
      frames,
    };
  }
  if (samples !== 1 || (bitsAllocated !== 8 && bitsAllocated !== 16))
    throw new ImageError(
      'UNSUPPORTED_IMAGE',
      `DICOM with ${samples} samples of ${bitsAllocated} bits is not supported.`,
    );
  const bytesPer = bitsAllocated / 8;
  const start = el.dataOffset + frame * n * bytesPer;
  if (start + n * bytesPer > ds.byteArray.length)
    throw new ImageError('CORRUPT_IMAGE', 'The DICOM pixel data is shorter than the image it declares.');
  const view = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + start, n * bytesPer);
  const mask = bitsStored >= 32 ? 0xffffffff : (1 << bitsStored) - 1;
  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  const values = new Float64Array(n);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    let v = bytesPer === 1 ? view.getUint8(i) : view.getUint16(i * 2, endian === 'little');
    v &= mask;
    if (signed && v & (1 << (bitsStored - 1))) v -= 1 << bitsStored;
    const m = v * slope + intercept; // Modality LUT
    values[i] = m;
    if (m < lo) lo = m;
    if (m > hi) hi = m;
  }
  // VOI: the file's first window, else the full range of this image.
  const centre = ds.floatString('x00281050');
  const widthW = ds.floatString('x00281051');
  const pixels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const m = values[i] as number;
    let y: number;
    if (centre !== undefined && widthW !== undefined && widthW >= 1) {
      const c = centre - 0.5;
      const w = widthW - 1;
      y = m <= c - w / 2 ? 0 : m > c + w / 2 ? 255 : ((m - c) / w + 0.5) * 255;
    } else y = hi > lo ? ((m - lo) / (hi - lo)) * 255 : 0;
    pixels[i] = Math.round(photometric === 'MONOCHROME1' ? 255 - y : y);
  }
  return { width, height, channels: 1, pixels, frames };
}
