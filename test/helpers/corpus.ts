// Valid images of every format the app reads, and fast-check mutations of them (bit flips, truncations,
// overwritten runs, spliced headers): the material of the decoder fuzz test and the robustness bench.

import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import sharp from 'sharp';
import { makeDicom } from './dicom.ts';
import { declaredPng, noiseJpeg, solidPng } from './images.ts';

/** One small valid file per format, named with its extension. */
export async function seedImages(): Promise<Map<string, Buffer>> {
  const noise = await noiseJpeg(48, 40, 7);
  const rgb = sharp(noise);
  const grey16 = Buffer.alloc(24 * 20 * 2);
  for (let i = 0; i < 24 * 20; i++) grey16.writeUInt16LE((i * 911) % 65536, i * 2);
  return new Map<string, Buffer>([
    ['seed.jpg', noise],
    ['seed-progressive.jpg', await rgb.clone().jpeg({ progressive: true }).toBuffer()],
    ['seed.png', await rgb.clone().png().toBuffer()],
    ['seed-interlaced.png', await rgb.clone().png({ progressive: true }).toBuffer()],
    [
      'seed16.png',
      await sharp(grey16, { raw: { width: 24, height: 20, channels: 1 } })
        .toColourspace('grey16')
        .png()
        .toBuffer(),
    ],
    ['seed.gif', await rgb.clone().gif().toBuffer()],
    ['seed.tif', await rgb.clone().tiff({ compression: 'lzw' }).toBuffer()],
    ['seed.webp', await rgb.clone().webp().toBuffer()],
    [
      'seed.dcm',
      makeDicom({
        width: 16,
        height: 12,
        values: Array.from({ length: 192 }, (_, i) => (i * 37) % 4096),
        bitsStored: 12,
        window: [2048, 4096],
      }),
    ],
  ]);
}

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'overwrite'; at: number; bytes: number[] }
  | { kind: 'duplicate'; from: number; length: number; to: number };

/** Positions are fractions of the file length so one mutation applies to any seed; unbiased, so that
 * they land anywhere in the file rather than mostly at its first byte. */
const fraction = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((v) => v / 1e6);
const mutationArb = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fraction,
    bit: fc.nat(7),
  }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fraction }),
  fc.record({
    kind: fc.constant('overwrite' as const),
    at: fraction,
    bytes: fc.array(fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x01), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    from: fraction,
    length: fc.integer({ min: 1, max: 64 }),
    to: fraction,
  }),
);

export const mutantsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

export function mutate(seed: Buffer, ms: readonly Mutation[]): Buffer {
  let b = Buffer.from(seed);
  const pos = (f: number, n = b.length): number => Math.min(n - 1, Math.floor(f * n));
  for (const m of ms) {
    if (b.length === 0) break;
    if (m.kind === 'flip') {
      const i = pos(m.at);
      b[i] = (b[i] as number) ^ (1 << m.bit);
    } else if (m.kind === 'truncate') b = b.subarray(0, Math.floor(m.keep * b.length));
    else if (m.kind === 'overwrite') {
      const i = pos(m.at);
      m.bytes.forEach((v, k) => {
        if (i + k < b.length) b[i + k] = v;
      });
    } else {
      const from = pos(m.from);
      const run = b.subarray(from, from + m.length);
      const to = pos(m.to);
      b = Buffer.concat([b.subarray(0, to), run, b.subarray(to)]);
    }
  }
  return b;
}

/** `count` mutants of the seeds, reproducible from `seed`: [file name, bytes]. */
export async function mutantCorpus(count: number, seed: number): Promise<[string, Buffer][]> {
  const seeds = [...(await seedImages())];
  const plans = fc.sample(fc.tuple(fc.nat(seeds.length - 1), mutantsArb), { numRuns: count, seed });
  return plans.map(([s, ms], i) => {
    const [name, bytes] = seeds[s] as [string, Buffer];
    return [`mutant-${String(i).padStart(4, '0')}-${name}`, mutate(bytes, ms)];
  });
}

/**
 * The hostile folder a hospital share produces, one file per case, under `dir/<case>/`: damaged, empty,
 * mislabelled, vector, bomb, odd colour models and orientations, animations, tiny, unicode and very long
 * names, DICOM (plain, compressed, truncated), a dangling link and a non-image. Returns the file count.
 */
export async function writeHostileCorpus(dir: string): Promise<number> {
  const files: [string, Buffer][] = [];
  const jpg = await noiseJpeg(60, 40, 3);
  const png = await solidPng(30, 20, [10, 200, 30]);
  files.push(['damaged/truncated.jpg', jpg.subarray(0, jpg.length >> 1)]);
  files.push(['damaged/truncated.png', png.subarray(0, png.length - 20)]);
  files.push(['damaged/zero-byte.png', Buffer.alloc(0)]);
  files.push(['damaged/text-as.png', Buffer.from('not an image, just notes\n')]);
  files.push(['damaged/binary.dat', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131) % 256))]);
  files.push(['blocked/vector.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')]);
  files.push(['blocked/bomb.png', declaredPng(100_000, 100_000)]);
  for (let o = 1; o <= 8; o++)
    files.push([
      `odd/orientation-${o}.jpg`,
      await sharp(jpg).withMetadata({ orientation: o }).jpeg().toBuffer(),
    ]);
  files.push(['odd/cmyk.jpg', await sharp(jpg).toColourspace('cmyk').jpeg().toBuffer()]);
  files.push(['odd/one-pixel.png', await solidPng(1, 1)]);
  const frames = Buffer.concat([Buffer.alloc(16 * 16 * 4, 200), Buffer.alloc(16 * 16 * 4, 40)]);
  files.push([
    'odd/animated.gif',
    await sharp(frames, { raw: { width: 16, height: 32, channels: 4, pageHeight: 16 } as never })
      .gif()
      .toBuffer(),
  ]);
  files.push(['odd/Zellkern-µ-细胞-🩸.png', await solidPng(21, 21, [1, 2, 3])]);
  files.push([`odd/${'long-name-'.repeat(22)}.png`, await solidPng(22, 21, [4, 5, 6])]);
  const values = Array.from({ length: 64 }, (_, i) => i * 50);
  files.push(['dicom/plain.dcm', makeDicom({ width: 8, height: 8, values, patientId: 'MRN-TEST' })]);
  files.push([
    'dicom/compressed.dcm',
    makeDicom({ width: 8, height: 8, values, transferSyntax: '1.2.840.10008.1.2.4.50' }),
  ]);
  const dcm = makeDicom({ width: 8, height: 8, values: values.map((v) => v + 1) });
  files.push(['dicom/truncated.dcm', dcm.subarray(0, dcm.length - 40)]);
  for (const [rel, bytes] of files) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), bytes);
  }
  fs.symlinkSync(path.join(dir, 'no-such-target.jpg'), path.join(dir, 'damaged', 'dangling.jpg'));
  return files.length + 1;
}
