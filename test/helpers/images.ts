// Test images made on the fly with sharp: nothing is vendored.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';

export function solidPng(
  width: number,
  height: number,
  rgb: [number, number, number] = [200, 30, 60],
): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

/** A noisy image: JPEG-compressible but not trivially so. */
export function noiseJpeg(width: number, height: number, seed = 1): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = (s >> 16) & 0xff;
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/** A PNG whose header declares width × height but holds almost no data: a decompression bomb's shape. */
export function declaredPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A 12-bit camera frame stored in a 16-bit PNG: values 0..4095 only. */
export function twelveBit(
  width: number,
  height: number,
  pattern: (x: number, y: number) => number,
): Promise<Buffer> {
  const v = new Uint16Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) v[y * width + x] = pattern(x, y);
  return sharp(v, { raw: { width, height, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
}

/** Two classes of 12-bit images in 16-bit PNGs (stripes and ramps), `n` of each, in `root`. */
export async function twelveBitFolder(root: string, n = 6): Promise<void> {
  for (const [cls, f] of [
    ['stripes', (x: number) => ((x >> 2) & 1) * 4000],
    ['ramp', (x: number, y: number) => (x * 40 + y * 20) % 4096],
  ] as const) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < n; i++)
      fs.writeFileSync(
        path.join(root, cls, `${i}.png`),
        await twelveBit(40 + i, 40, (x, y) => Math.min(4095, f(x + i, y) + ((x * 13 + y * 7 + i) % 50))),
      );
  }
}
