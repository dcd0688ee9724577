// The 20 official Omniglot one-shot runs (Lake et al., Science 2015): 20-way 1-shot classification by
// nearest prototype on frozen backbone features, printed beside the published error rates.
//
//   npm run bench:omniglot [-- --backbones squeezenet1_1-imagenet,resnet18-random]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/main/engine/backbones/backbone.ts';
import { ensureRandomResNet18 } from '../src/main/engine/backbones/install.ts';
import { resolveBackbone } from '../src/main/engine/backbones/registry.ts';
import { fitPrototype, predictProba } from '../src/main/engine/classify/heads.ts';
import { argmax } from '../src/main/engine/classify/linalg.ts';
import { embedAll } from '../src/main/engine/features/pipeline.ts';
import { GENERATED, OMNIGLOT, requireShared } from './lib.ts';

const { values } = parseArgs({
  options: { backbones: { type: 'string', default: 'squeezenet1_1-imagenet,resnet18-random' } },
});

const PUBLISHED: [string, number][] = [
  ['People', 4.5],
  ['Bayesian Program Learning', 3.3],
  ['Siamese convnet', 8.0],
  ['Affine model', 18.2],
  ['Hierarchical deep model', 34.8],
];

async function embed(b: Backbone, files: string[]): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for await (const batch of embedAll(
    b,
    files.map((f) => ({ item: f, load: () => fs.readFileSync(f) })),
  )) {
    for (const r of batch) {
      if (!r.ok) throw new Error(`${r.item}: ${r.error.message}`);
      out.set(r.item, r.vector);
    }
  }
  return out;
}

async function main(): Promise<void> {
  requireShared();
  ensureRandomResNet18(GENERATED);
  const runsDir = path.join(OMNIGLOT, 'one-shot-runs');
  const runs = fs
    .readdirSync(runsDir)
    .filter((r) => r.startsWith('run'))
    .sort();
  console.log(
    `Omniglot: ${runs.length} official 20-way 1-shot runs, nearest prototype on frozen features (SimpleShot CL2N)\n`,
  );
  const rows: [string, number][] = [];
  for (const id of values.backbones.split(',')) {
    const b = await Backbone.load(resolveBackbone(id));
    let errors = 0;
    let total = 0;
    for (const run of runs) {
      const dir = path.join(runsDir, run);
      const pairs = fs
        .readFileSync(path.join(dir, 'class_labels.txt'), 'utf8')
        .trim()
        .split(/\r?\n/)
        .map(
          (l) =>
            l
              .trim()
              .split(/\s+/)
              .map((p) => path.join(runsDir, p)) as [string, string],
        );
      const support = [...new Set(pairs.map((p) => p[1]))].sort();
      const feats = await embed(b, [...support, ...pairs.map((p) => p[0])]);
      const head = fitPrototype({
        x: support.map((s) => feats.get(s) as Float32Array),
        y: support.map((_, i) => i),
        classes: support,
      });
      for (const [query, answer] of pairs) {
        const guess = support[argmax(predictProba(head, feats.get(query) as Float32Array))];
        if (guess !== answer) errors++;
        total++;
      }
    }
    await b.release();
    rows.push([`FewShot Lab prototype · ${id}`, (100 * errors) / total]);
    console.log(`${id}: ${errors} errors in ${total} queries`);
  }
  console.log('\nerror rate on the 20 runs (lower is better)');
  for (const [name, e] of [
    ...rows,
    ...PUBLISHED.map(([n, v]) => [`${n} (published)`, v] as [string, number]),
  ]) {
    console.log(`  ${name.padEnd(52)} ${e.toFixed(1).padStart(5)} %`);
  }
  console.log('\nThe backbones are ImageNet-pretrained (or random): nothing here was trained on Omniglot.');
}

await main();
