import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { IMAGENET_RGB } from '../../src/shared/backbones.ts';
import { ImageError, probeImage, validateImage, decoder, toRgb } from '../../src/main/engine/image/decode.ts';
import {
  cropGeometry,
  evalCrop,
  normalizeInto,
  roundHalfEven,
} from '../../src/main/engine/image/preprocess.ts';
import { sniffImage } from '../../src/main/engine/image/sniff.ts';
import { declaredPng, noiseJpeg, solidPng } from '../helpers/images.ts';

const spec = { ...IMAGENET_RGB, name: 'input' };

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof ImageError && e.reject === code);
}

test('roundHalfEven follows Python 3 round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 16.5, 17.5, 3.2, 3.7].map(roundHalfEven), [0, 2, 2, 16, 18, 3, 4]);
});

test('cropGeometry matches torchvision Resize(256) + CenterCrop(224)', () => {
  // 640×480: shorter side 480 → 256; width int(256·640/480) = 341; left round((341−224)/2) = round(58.5) = 58.
  assert.deepEqual(cropGeometry(640, 480, spec), { resizeWidth: 341, resizeHeight: 256, left: 58, top: 16 });
  // Portrait 30×47: width 256, height int(256·47/30) = 401; top round(88.5) = 88.
  assert.deepEqual(cropGeometry(30, 47, spec), { resizeWidth: 256, resizeHeight: 401, left: 16, top: 88 });
  assert.deepEqual(cropGeometry(100, 100, spec), { resizeWidth: 256, resizeHeight: 256, left: 16, top: 16 });
});

test('normalizeInto writes (x − mean)·scale/std in the model layout and channel order', () => {
  const img = { width: 224, height: 224, data: new Uint8Array(224 * 224 * 3) };
  img.data[0] = 10; // R of pixel 0
  img.data[1] = 20; // G
  img.data[2] = 30; // B
  const nchw = new Float32Array(3 * 224 * 224);
  normalizeInto(img, spec, nchw, 0);
  assert.ok(Math.abs((nchw[0] as number) - (10 / 255 - 0.485) / 0.229) < 1e-5);
  assert.ok(Math.abs((nchw[224 * 224] as number) - (20 / 255 - 0.456) / 0.224) < 1e-5);
  const bgr = {
    ...spec,
    layout: 'NHWC' as const,
    channels: 'BGR' as const,
    scale: 1,
    mean: [1, 2, 3] as [number, number, number],
    std: [1, 1, 1] as [number, number, number],
  };
  const nhwc = new Float32Array(3 * 224 * 224);
  normalizeInto(img, bgr, nhwc, 0);
  assert.deepEqual([...nhwc.subarray(0, 3)], [30 - 1, 20 - 2, 10 - 3]);
});

test('the image sniffer tells images, refused formats and other files apart', () => {
  assert.deepEqual(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), { kind: 'image', format: 'jpeg' });
  assert.equal(
    sniffImage(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')).kind,
    'unsupported',
  );
  assert.equal(sniffImage(Buffer.from('hello, this is text')).kind, 'unknown');
  assert.equal(sniffImage(Buffer.from('BM\0\0\0\0')).kind, 'unsupported');
});

test('EXIF orientation is applied: a 40×20 JPEG tagged "rotate 90" is 20×40', async () => {
  const jpeg = await sharp(await noiseJpeg(40, 20))
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toBuffer();
  const info = await probeImage(jpeg);
  assert.deepEqual([info.width, info.height], [20, 40]);
  const rgb = await toRgb(decoder(jpeg));
  assert.deepEqual([rgb.width, rgb.height], [20, 40]);
});

test('grey, alpha and 16-bit inputs become 8-bit sRGB by the stated policy', async () => {
  const grey = await sharp(Buffer.alloc(16 * 16, 100), { raw: { width: 16, height: 16, channels: 1 } })
    .png()
    .toBuffer();
  const g = await toRgb(decoder(grey));
  assert.deepEqual([...g.data.subarray(0, 3)], [100, 100, 100]);

  const transparent = await sharp({
    create: { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
  })
    .png()
    .toBuffer();
  const t = await toRgb(decoder(transparent));
  assert.deepEqual([...t.data.subarray(0, 3)], [255, 255, 255], 'alpha composites onto white');

  const sixteen = Buffer.alloc(8 * 8 * 2);
  for (let i = 0; i < 64; i++) sixteen.writeUInt16LE(32896, i * 2); // 0x8080 → 128 by full-range mapping
  const png16 = await sharp(sixteen, { raw: { width: 8, height: 8, channels: 1, premultiplied: false } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  const meta = await sharp(png16).metadata();
  assert.equal(meta.depth, 'ushort', 'the fixture really is 16-bit');
  const s = await toRgb(decoder(png16));
  assert.deepEqual([...s.data.subarray(0, 3)], [128, 128, 128]);
});

test('evalCrop gives the model input size for tiny and large images', async () => {
  for (const [w, h] of [
    [1, 1],
    [20, 35],
    [640, 480],
  ] as const) {
    const img = await evalCrop(await solidPng(w, h, [10, 200, 30]), spec);
    assert.deepEqual([img.width, img.height], [224, 224]);
    assert.deepEqual([...img.data.subarray(0, 3)], [10, 200, 30]);
  }
});

test('damaged, empty, foreign and oversized files fail with a typed reason', async () => {
  const jpeg = await noiseJpeg(64, 64);
  await rejects(validateImage(jpeg.subarray(0, Math.floor(jpeg.length * 0.6))), 'CORRUPT_IMAGE');
  await rejects(validateImage(Buffer.alloc(0)), 'EMPTY_FILE');
  await rejects(validateImage(Buffer.from('just some text, not a PNG\n')), 'NOT_AN_IMAGE');
  await rejects(
    validateImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"></svg>')),
    'UNSUPPORTED_IMAGE',
  );
  await rejects(validateImage(declaredPng(100_000, 100_000)), 'IMAGE_TOO_LARGE');
  await rejects(
    validateImage(await solidPng(300, 300), { maxPixels: 50_000, maxBytes: 1e9 }),
    'IMAGE_TOO_LARGE',
  );
  await rejects(validateImage(jpeg, { maxPixels: 1e9, maxBytes: 100 }), 'IMAGE_TOO_LARGE');
  const ok = await validateImage(jpeg);
  assert.deepEqual(ok, { format: 'jpeg', width: 64, height: 64, pages: 1 });
});
