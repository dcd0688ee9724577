import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { AugmentSpecSchema, DEFAULT_AUGMENT, NO_AUGMENT } from '../../src/shared/augment.ts';
import { augmentImage, augmentPreview } from '../../src/main/engine/augment/augment.ts';
import { evalCrop } from '../../src/main/engine/image/preprocess.ts';
import { IMAGENET_RGB } from '../../src/shared/backbones.ts';
import { noiseJpeg } from '../helpers/images.ts';

const size = { ...IMAGENET_RGB, name: 'input' };

test('augmentation is seeded: same seed same pixels, another seed other pixels', async () => {
  const jpeg = await noiseJpeg(120, 90, 5);
  const spec = AugmentSpecSchema.parse({ vflip: true, blur: 1.5, noise: 8 });
  const a = await augmentImage(jpeg, spec, 42, size);
  const b = await augmentImage(jpeg, spec, 42, size);
  const c = await augmentImage(jpeg, spec, 43, size);
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.draw, b.draw);
  assert.notDeepEqual(a.image.data, c.image.data);
  assert.deepEqual([a.image.width, a.image.height], [224, 224]);
});

test('with every transform off, augmentation is the evaluation crop', async () => {
  // A smooth image: the two paths sample at slightly different phases, which only noise would magnify.
  const raw = Buffer.alloc(300 * 200 * 3);
  for (let y = 0; y < 200; y++)
    for (let x = 0; x < 300; x++)
      raw.set([Math.round(x * 0.8), Math.round(y * 1.2), Math.round((x + y) * 0.5)], (y * 300 + x) * 3);
  const jpeg = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } })
    .png()
    .toBuffer();
  const { image } = await augmentImage(jpeg, NO_AUGMENT, 1, size);
  const ref = await evalCrop(jpeg, size);
  let diff = 0;
  for (let i = 0; i < ref.data.length; i++)
    diff = Math.max(diff, Math.abs((image.data[i] as number) - (ref.data[i] as number)));
  assert.ok(diff <= 40, `max pixel difference ${diff}`); // same region; resampling paths differ slightly
  let mean = 0;
  for (let i = 0; i < ref.data.length; i++)
    mean += Math.abs((image.data[i] as number) - (ref.data[i] as number));
  assert.ok(mean / ref.data.length < 3);
});

test('greyscale stays grey through colour jitter and noise', async () => {
  const grey = await sharp(
    Buffer.alloc(64 * 64, 90).map((_, i) => (i * 7) % 256),
    { raw: { width: 64, height: 64, channels: 1 } },
  )
    .png()
    .toBuffer();
  const { image } = await augmentImage(
    grey,
    { ...DEFAULT_AUGMENT, noise: 20, brightness: 0.3, contrast: 0.3 },
    9,
    size,
  );
  for (let i = 0; i < image.data.length; i += 3)
    assert.ok(image.data[i] === image.data[i + 1] && image.data[i] === image.data[i + 2]);
});

test('the preview returns N PNG variants of the image', async () => {
  const pngs = await augmentPreview(await noiseJpeg(80, 80, 7), DEFAULT_AUGMENT, 8, 100, size);
  assert.equal(pngs.length, 8);
  for (const p of pngs) {
    const m = await sharp(p).metadata();
    assert.deepEqual([m.format, m.width, m.height], ['png', 224, 224]);
  }
  assert.equal(new Set(pngs.map((p) => p.toString('base64'))).size, 8);
  assert.throws(() => AugmentSpecSchema.parse({ rotate: 500 }));
  assert.throws(() => AugmentSpecSchema.parse({ sharpen: 1 }));
});

test('DEFAULT_AUGMENT is exactly the schema defaults', () => {
  assert.deepEqual(DEFAULT_AUGMENT, AugmentSpecSchema.parse({}));
});
