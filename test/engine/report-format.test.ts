import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sizeLimitation } from '../../src/main/engine/export/model-card.ts';
import {
  formatSetting,
  linesAtSlashes,
  pct,
  score,
  shortenMiddle,
  shortenPath,
} from '../../src/main/engine/report/format.ts';
import { DEFAULT_AUGMENT } from '../../src/shared/augment.ts';
import type { ModelRecord } from '../../src/shared/results.ts';

test('a share reads 100 % or 0 % only when it is exactly that', () => {
  assert.equal(pct(1), '100.0 %');
  assert.equal(pct(0.995), '99.5 %');
  assert.equal(pct(0.9996), '99.96 %');
  assert.equal(pct(0.999999), '99.999 %');
  assert.equal(pct(0.0004), '0.04 %');
  assert.equal(pct(0), '0.0 %');
  assert.equal(pct(0.5, 0), '50 %');
  assert.equal(score(0.99996), '0.99996');
  assert.equal(score(1), '1.000');
});

test('a long path is shortened in the middle, the file name kept whole', () => {
  const fits = (n: number) => (s: string) => s.length <= n;
  assert.equal(shortenPath('a/b.png', fits(40)), 'a/b.png');
  const long = 'run-12/scanner 3/slide 14/region 2/cell 7.png';
  const s = shortenPath(long, fits(30));
  assert.ok(s.length <= 30, s);
  assert.ok(s.startsWith('run-12/') && s.endsWith('/cell 7.png'), s);
  assert.equal(shortenPath(long, fits(12)), '…/cell 7.png');
  // A file name too long for the space left loses its middle, not its extension.
  const cut = shortenPath(long, fits(9));
  assert.ok(cut.length <= 9 && cut.startsWith('…/c') && cut.endsWith('png'), cut);
  assert.equal(shortenPath('a-very-long-file-name.png', fits(12)), 'a-very…e.png');
});

test('a long name loses its middle; lines break only after a slash', () => {
  const fits = (n: number) => (s: string) => s.length <= n;
  assert.equal(shortenMiddle('Neutrophil', fits(20)), 'Neutrophil');
  assert.equal(shortenMiddle('Neutrophil-band-form', fits(9)), 'Neut…form');
  assert.equal(shortenMiddle('Neutrophil', fits(0)), '…');
  assert.deepEqual(linesAtSlashes('run-12/slide 3/cell 7.png', fits(16), 2), [
    'run-12/slide 3/',
    'cell 7.png',
  ]);
  assert.equal(linesAtSlashes('run-12/slide 3/cell 7.png', fits(9), 2), null);
  assert.equal(linesAtSlashes('a/averyveryverylongname.png', fits(10), 3), null);
});

function metrics(lo: number, hi: number): NonNullable<ModelRecord['metrics']> {
  return {
    accuracy: { mean: (lo + hi) / 2, ci95: [lo, hi], method: 't', n: 100 },
  } as unknown as NonNullable<ModelRecord['metrics']>;
}

test('the model card calls intervals wide only when the classes are small', () => {
  const small = sizeLimitation(60, 20, metrics(0.7, 0.95));
  assert.match(small, /so few images per class the intervals below are wide \(accuracy: 25\.0 points\)/);
  const large = sizeLimitation(1133, 361, metrics(0.96, 0.99));
  assert.doesNotMatch(large, /few images|wide/);
  assert.match(large, /about ± 1\.5 points/);
  assert.match(large, /other scanners, stains or sites/);
  assert.match(sizeLimitation(30, 10, null), /No evaluation was stored/);
});

test('a training setting reads in words, never as "[object Object]"', () => {
  assert.equal(formatSetting('lrHead', 0.0010000001), '0.001');
  assert.equal(formatSetting('gradientClip', null), 'none');
  assert.equal(formatSetting('sampling', 'class-balanced'), 'class-balanced');
  assert.equal(
    formatSetting('augment', {
      ...DEFAULT_AUGMENT,
      hflip: true,
      vflip: false,
      rotate: 10,
      cropScale: 1,
      translate: 0,
      scale: 0,
      brightness: 0,
      contrast: 0.2,
      blur: 0,
      noise: 0,
    }),
    'horizontal flip, rotation ±10°, contrast ±0.2',
  );
  // A model that did not record every field: its JSON, not the defaults' description.
  assert.equal(formatSetting('augment', { hflip: true }), '{"hflip":true}');
  assert.equal(
    formatSetting('history', [
      { epoch: 1, loss: 0.41234, validationAccuracy: 0.9 },
      { epoch: 2, loss: 0.2, validationAccuracy: null },
      null,
    ]),
    '1: loss 0.412, validation 90.0 %; 2: loss 0.200; 3: no loss recorded',
  );
  assert.equal(
    formatSetting('placement', { provider: 'webgpu', nodes: 120, cpuNodes: 3, cpuOps: ['Gather'] }),
    'webgpu: 120 nodes, 3 of them on the CPU',
  );
  assert.equal(
    formatSetting('placement', { provider: { name: 'x' }, nodes: 1, cpuNodes: 0 }),
    '{"provider":{"name":"x"},"nodes":1,"cpuNodes":0}',
  );
  assert.equal(formatSetting('other', { a: [1, 2] }), '{"a":[1,2]}');
  assert.equal(formatSetting('providers', ['webgpu', 'cpu']), 'webgpu, cpu');
});
