// A minimal DICOM Part 10 writer (explicit VR little endian) for tests: no vendored files.

type Value = { vr: string; data: Buffer };

function element(group: number, elem: number, vr: string, data: Buffer): Buffer {
  const padded =
    data.length % 2 ? Buffer.concat([data, Buffer.from(vr === 'UI' || vr === 'OB' ? [0] : [0x20])]) : data;
  const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(padded.length, 8);
  else head.writeUInt16LE(padded.length, 6);
  return Buffer.concat([head, padded]);
}

const str = (vr: string, s: string): Value => ({ vr, data: Buffer.from(s, 'latin1') });
const us = (n: number): Value => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return { vr: 'US', data: b };
};

export interface DicomSpec {
  width: number;
  height: number;
  /** Stored values, row-major. */
  values: number[];
  bitsAllocated?: 8 | 16;
  bitsStored?: number;
  signed?: boolean;
  photometric?: 'MONOCHROME1' | 'MONOCHROME2';
  slope?: number;
  intercept?: number;
  window?: [number, number];
  transferSyntax?: string;
  patientId?: string;
  patientName?: string;
  frames?: number;
  /** Added to every value of frame f, times f, so frames differ. */
  frameOffset?: number;
}

export function makeDicom(s: DicomSpec): Buffer {
  const ts = s.transferSyntax ?? '1.2.840.10008.1.2.1';
  const meta = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 0x0002, 'UI', Buffer.from('1.2.840.10008.5.1.4.1.1.7')),
    element(0x0002, 0x0003, 'UI', Buffer.from('1.2.3.4.5.6.7')),
    element(0x0002, 0x0010, 'UI', Buffer.from(ts)),
    element(0x0002, 0x0012, 'UI', Buffer.from('1.2.3.4')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  const bits = s.bitsAllocated ?? 16;
  const frames = s.frames ?? 1;
  const pixels = Buffer.alloc(s.values.length * (bits / 8) * frames);
  for (let f = 0; f < frames; f++)
    s.values.forEach((v0, i) => {
      const v = v0 + f * (s.frameOffset ?? 0);
      const o = f * s.values.length + i;
      if (bits === 8) pixels.writeUInt8(v & 0xff, o);
      else pixels.writeUInt16LE(v & 0xffff, o * 2);
    });
  const ds: [number, number, Value][] = [
    [0x0008, 0x0060, str('CS', 'OT')],
    ...(s.patientName ? ([[0x0010, 0x0010, str('PN', s.patientName)]] as [number, number, Value][]) : []),
    ...(s.patientId ? ([[0x0010, 0x0020, str('LO', s.patientId)]] as [number, number, Value][]) : []),
    [0x0028, 0x0002, us(1)],
    [0x0028, 0x0004, str('CS', s.photometric ?? 'MONOCHROME2')],
    ...(frames > 1 ? ([[0x0028, 0x0008, str('IS', String(frames))]] as [number, number, Value][]) : []),
    [0x0028, 0x0010, us(s.height)],
    [0x0028, 0x0011, us(s.width)],
    ...(s.window
      ? ([
          [0x0028, 0x1050, str('DS', String(s.window[0]))],
          [0x0028, 0x1051, str('DS', String(s.window[1]))],
        ] as [number, number, Value][])
      : []),
    ...(s.intercept !== undefined
      ? ([[0x0028, 0x1052, str('DS', String(s.intercept))]] as [number, number, Value][])
      : []),
    ...(s.slope !== undefined
      ? ([[0x0028, 0x1053, str('DS', String(s.slope))]] as [number, number, Value][])
      : []),
    [0x0028, 0x0100, us(bits)],
    [0x0028, 0x0101, us(s.bitsStored ?? bits)],
    [0x0028, 0x0102, us((s.bitsStored ?? bits) - 1)],
    [0x0028, 0x0103, us(s.signed ? 1 : 0)],
  ];
  ds.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM'),
    element(0x0002, 0x0000, 'UL', groupLength),
    meta,
    ...ds.map(([g, e, v]) => element(g, e, v.vr, v.data)),
    element(0x7fe0, 0x0010, bits === 8 ? 'OB' : 'OW', pixels),
  ]);
}
