import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { predictProba } from '../../src/main/engine/classify/heads.ts';
import { loadDataset } from '../../src/main/engine/classify/dataset.ts';
import { datasetWarnings } from '../../src/main/engine/dataset-warnings.ts';
import { exportModel, importModelBundle, loadHead } from '../../src/main/engine/export/bundle.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { QueuedSession, ort } from '../../src/main/engine/onnx/session.ts';
import { renderBatchReport } from '../../src/main/engine/report/batch-report.ts';
import { formatEstimate, renderEvaluationReport } from '../../src/main/engine/report/evaluation-report.ts';
import { computeReview } from '../../src/main/engine/review.ts';
import { preprocessInto, tensorSize } from '../../src/main/engine/image/preprocess.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import type { EvaluationResult } from '../../src/shared/results.ts';
import { BCCD, REPO, SHARED_MODELS, needsShared, SQUEEZENET, tmpDir, useModelDirs } from '../helpers/env.ts';

const poppler = spawnSync('pdftotext', ['-v']).status === 0;
const skip = needsShared || (!poppler && 'poppler-utils is not installed (apt-get install poppler-utils)');
const CANARIES = ['DOE^JANE', 'MRN123456'];

let project: Project;
let backbone: Backbone;
let file = '';
let modelId = '';
let root = '';

/** A small BCCD copy under folders named after a patient, with the canaries also in EXIF and groups. */
async function canaryFolder(): Promise<string> {
  const base = path.join(tmpDir('fsl-canary-'), 'DOE^JANE', 'MRN123456', 'export');
  const rows = ['file,group'];
  for (const cls of ['WBC', 'RBC', 'Platelets']) {
    fs.mkdirSync(path.join(base, cls), { recursive: true });
    for (const [k, f] of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 14).entries()) {
      const src = path.join(BCCD, cls, f);
      const out = path.join(base, cls, f);
      if (k % 3 === 0)
        await sharp(src)
          .withExif({
            IFD0: { Artist: 'DOE^JANE', ImageDescription: 'MRN123456 DOE^JANE', Copyright: 'MRN123456' },
          })
          .jpeg({ quality: 92 })
          .toFile(out);
      else fs.copyFileSync(src, out);
      rows.push(`${cls}/${f},DOE^JANE-MRN123456-${f.slice(0, 16)}`);
    }
  }
  fs.writeFileSync(path.join(base, 'groups.csv'), `${rows.join('\n')}\n`);
  return base;
}

before(async () => {
  if (skip) return;
  useModelDirs(tmpDir('fsl-user-models-'));
  root = await canaryFolder();
  file = path.join(tmpDir(), 'report.fsl');
  project = Project.create(file);
  await importFolder(project, root, { groupsCsv: path.join(root, 'groups.csv') });
  // One WBC crop (with canaries in its EXIF) filed as RBC: cross-validation misclassifies it, so its
  // thumbnail goes into the report.
  const mislabelled = project.images.list().find((i) => i.relPath.startsWith('WBC/'));
  project.images.relabel([mislabelled?.id as number], 'RBC');
  backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  modelId = (await trainModel(project, backbone, { strategy: 'linear', seed: 3 })).modelId;
});
after(async () => {
  await backbone?.release();
  project?.close();
});

function pdfText(pdf: string, args: string[] = []): string {
  return execFileSync('pdftotext', ['-layout', ...args, pdf, '-'], { encoding: 'utf8' });
}

test(
  'the evaluation report: all sections, the confusion-matrix page, rendered pages, no patient data',
  { skip, timeout: 120_000 },
  async () => {
    const { model } = loadHead(project, modelId);
    const review = await computeReview(project, backbone, model);
    const warnings = await datasetWarnings(project, await loadDataset(project, backbone));
    const pdf = await renderEvaluationReport({ project, ...review, warnings, compress: false });
    const out = path.join(tmpDir(), 'report.pdf');
    fs.writeFileSync(out, pdf);
    const text = pdfText(out);
    for (const s of [
      'Evaluation report',
      '1. Data',
      '2. Model',
      '3. Results',
      '4. Limitations',
      'Dataset fingerprint',
      'Learning curve',
      'Misclassified examples',
    ])
      assert.ok(text.includes(s), s);
    assert.ok(text.includes(formatEstimate(review.evaluation.accuracy)));
    assert.match(text, /n = 13 images in the smallest class/); // 14 WBC crops, one relabelled
    // The protocol in words and the held-out calibration error, for this evaluation and the stored one.
    assert.ok(text.includes('5-fold CV, n = 42'), 'protocol label');
    assert.match(text, /Calibration error \(ECE\)\s+[\d.]+ %\s+10 bins, n = 42, mean confidence [\d.]+ %/);
    assert.match(text, /Estimate stored with the model at training: [^]*5-fold CV, n = 42\);\s+ECE/);
    const pages = Number(/Pages:\s+(\d+)/.exec(execFileSync('pdfinfo', [out], { encoding: 'utf8' }))?.[1]);
    const perPage = Array.from({ length: pages }, (_, i) =>
      pdfText(out, ['-f', String(i + 1), '-l', String(i + 1)]),
    );
    assert.ok(
      perPage.every((p) => p.includes('Research use only — not for diagnosis.')),
      'the statement is on every page',
    );
    const cm = perPage.find((p) => p.includes('Confusion matrix'));
    assert.ok(
      cm && cm.includes('Row-normalised'),
      'a confusion-matrix page with counts and row-normalised shares',
    );
    const png = path.join(tmpDir(), 'page');
    execFileSync('pdftoppm', ['-r', '50', '-png', out, png]);
    const rendered = fs
      .readdirSync(path.dirname(png))
      .filter((f) => f.startsWith('page') && f.endsWith('.png'));
    assert.equal(rendered.length, pages);
    assert.ok((await sharp(path.join(path.dirname(png), rendered[0] as string)).metadata()).width ?? 0 > 300);

    // Canaries: not in the text, not in the PDF's metadata, not in the raw (uncompressed) bytes that
    // carry the thumbnails.
    const info = execFileSync('pdfinfo', [out], { encoding: 'utf8' });
    const raw = pdf.toString('latin1');
    for (const c of CANARIES) {
      assert.ok(!text.includes(c), `${c} in the text`);
      assert.ok(!info.includes(c), `${c} in the metadata`);
      assert.ok(!raw.includes(c), `${c} in the file`);
    }
    assert.ok(!text.includes(root) && !text.includes('/tmp/'), 'no absolute path');
    assert.ok(raw.includes('/DCTDecode'), 'the thumbnails are in the file');
    // Every embedded image is plain pixels: no EXIF block.
    const imgDir = tmpDir('fsl-pdfimages-');
    execFileSync('pdfimages', ['-j', out, path.join(imgDir, 'img')]);
    const images = fs.readdirSync(imgDir);
    assert.ok(images.length > 0);
    for (const f of images) {
      const bytes = fs.readFileSync(path.join(imgDir, f));
      for (const c of CANARIES) assert.ok(!bytes.toString('latin1').includes(c), `${c} in ${f}`);
      assert.equal((await sharp(bytes).metadata()).exif, undefined, `${f} carries EXIF`);
    }
  },
);

test(
  'long class and file names lose their middle in the report, and no caption or matrix label splits a word',
  { skip, timeout: 120_000 },
  async () => {
    const long = 'Neutrophil-band-form-segmented-leukocyte';
    const base = tmpDir('fsl-long-names-');
    for (const [cls, name] of [
      ['WBC', long],
      ['RBC', 'RBC'],
      ['Platelets', 'Platelets'],
    ] as const) {
      const dir = path.join(base, name, 'scanner-run-2024-05-17', 'slide-00012');
      fs.mkdirSync(dir, { recursive: true });
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 12))
        fs.copyFileSync(
          path.join(BCCD, cls, f),
          path.join(dir, `averyveryverylongfilenamewithoutanybreaks_${f}`),
        );
    }
    const p = Project.create(path.join(tmpDir(), 'long.fsl'));
    try {
      await importFolder(p, base, {});
      // Two of the long-named class filed under RBC: misclassified, so their captions are drawn.
      const wbc = p.images.list().filter((i) => i.relPath.startsWith(long));
      p.images.relabel(
        wbc.slice(0, 2).map((i) => i.id),
        'RBC',
      );
      const id = (await trainModel(p, backbone, { strategy: 'linear', seed: 3 })).modelId;
      const { model } = loadHead(p, id);
      const review = await computeReview(p, backbone, model);
      const warnings = await datasetWarnings(p, await loadDataset(p, backbone));
      const out = path.join(tmpDir(), 'long.pdf');
      fs.writeFileSync(
        out,
        await renderEvaluationReport({ project: p, ...review, warnings, compress: false }),
      );
      const lines = pdfText(out, ['-raw']).split('\n');
      const captions = lines.filter((l) => l.startsWith('true: ') || l.startsWith('predicted: '));
      assert.ok(captions.length >= 4, `${captions.length} caption lines`);
      // Each caption line is whole: a class name either complete or cut in its middle, never wrapped.
      for (const c of captions)
        assert.match(c, /^(true|predicted): (RBC|Platelets|Neutr\S*…\S*)( \([\d.]+ %\))?$/, c);
      lines.forEach((l, i) => {
        if (l.startsWith('true: ')) assert.match(lines[i + 1] ?? '', /^predicted: /, `after ${l}`);
      });
      const files = lines.filter((l) => l.startsWith('averyvery'));
      assert.ok(files.length >= 2);
      for (const f of files) assert.match(f, /^averyvery\S*…\S*\.jpg$/, f);
      // The matrix labels: shortened to their cells, nothing left over from a wrapped name (the per-class
      // table above them wraps names whole at their hyphens).
      const matrix = lines.slice(lines.indexOf('Confusion matrix'), lines.indexOf('Misclassified examples'));
      assert.ok(matrix.length > 3, 'the matrix section');
      assert.ok(
        matrix.some((l) => /^Neut\S*…\S*yte Platelets RBC$/.test(l)),
        'shortened column labels',
      );
      assert.ok(
        matrix.some((l) => /^Neut\S*…\S* \d+ \d+ \d+$/.test(l)),
        'a shortened row label',
      );
      assert.ok(!matrix.some((l) => /^(band|form|segmented|leukocyte)\b/.test(l)), 'a label wrapped');
    } finally {
      p.close();
    }
  },
);

test(
  'the batch report and CSV name files relative to the folder only',
  { skip, timeout: 120_000 },
  async () => {
    const { model } = loadHead(project, modelId);
    const csv = path.join(tmpDir(), 'batch.csv');
    fs.writeFileSync(path.join(root, 'WBC', 'broken.jpg'), 'not a jpeg');
    const r = await classifyFolder(project, await loadModelRunner(project, model, backbone), model, root, {
      outCsv: csv,
      minConfidence: 0.99,
    });
    const pdf = await renderBatchReport(project, r.runId, { compress: false });
    const out = path.join(tmpDir(), 'batch.pdf');
    fs.writeFileSync(out, pdf);
    const text = pdfText(out);
    assert.match(text, /Batch classification report/);
    assert.match(text, /Folder: export/);
    assert.ok(text.includes(`${r.files}`));
    assert.match(text, /Failed files \(1\)/);
    assert.match(text, /WBC\/broken\.jpg\s+NOT_AN_IMAGE/);
    for (const c of CANARIES) {
      assert.ok(!text.includes(c), `${c} in the batch report`);
      assert.ok(!fs.readFileSync(csv, 'utf8').includes(c), `${c} in the CSV`);
    }
  },
);

test(
  'report metrics equal `fewshot evaluate --json` for the same settings',
  { skip, timeout: 180_000 },
  () => {
    project.close();
    const env = { ...process.env, FEWSHOT_MODELS: SHARED_MODELS };
    const bin = path.join(REPO, 'bin', 'fewshot.mjs');
    const ev = spawnSync(
      process.execPath,
      [
        bin,
        'evaluate',
        file,
        '--backbone',
        SQUEEZENET,
        '--strategy',
        'linear',
        '--folds',
        '5',
        '--seed',
        '3',
        '--json',
      ],
      { encoding: 'utf8', env },
    );
    assert.equal(ev.status, 0, ev.stderr);
    const json = JSON.parse(ev.stdout) as EvaluationResult;
    const out = path.join(tmpDir(), 'cli-report.pdf');
    const rep = spawnSync(
      process.execPath,
      [bin, 'report', file, '--model', modelId, '--folds', '5', '--out', out],
      { encoding: 'utf8', env },
    );
    assert.equal(rep.status, 0, rep.stderr);
    const text = pdfText(out);
    for (const e of [json.accuracy, json.balancedAccuracy, json.macroF1])
      assert.ok(text.includes(formatEstimate(e)), formatEstimate(e));
    for (const c of json.perClass) assert.ok(text.includes(formatEstimate(c.recall)), `${c.class} recall`);
    project = Project.open(file);
  },
);

test(
  'export: one ONNX graph that reproduces the app, imported back with the same predictions',
  { skip, timeout: 120_000 },
  async () => {
    for (const strategy of ['linear', 'prototype'] as const) {
      const id =
        strategy === 'linear'
          ? modelId
          : (await trainModel(project, backbone, { strategy, seed: 1, estimate: false })).modelId;
      const dir = path.join(tmpDir(), `bundle-${strategy}`);
      const r = await exportModel(project, id, resolveBackbone(SQUEEZENET), backbone, dir);
      assert.deepEqual(r.files.filter((f) => !f.startsWith('test-vectors/images/')).sort(), [
        'labels.json',
        'model-card.md',
        'model.onnx',
        'parity.json',
        'preprocessing.json',
        'test-vectors/check.py',
        'test-vectors/inputs.npy',
        'test-vectors/logits.npy',
        'test-vectors/probabilities.npy',
        'test-vectors/vectors.json',
      ]);
      assert.equal(r.files.filter((f) => f.startsWith('test-vectors/images/')).length, 8);
      assert.ok(
        r.parity.passed && r.parity.images === 42 && r.parity.maxProbabilityDifference <= 1e-4,
        JSON.stringify(r.parity),
      );
      const card = fs.readFileSync(path.join(dir, 'model-card.md'), 'utf8');
      for (const s of ['Intended use', 'Research use only', 'Limitations', 'Dataset fingerprint', 'Seed'])
        assert.ok(card.includes(s), s);
      for (const c of CANARIES)
        assert.ok(
          !card.includes(c) && !fs.readFileSync(path.join(dir, 'model.onnx')).toString('latin1').includes(c),
        );
      const spec = JSON.parse(fs.readFileSync(path.join(dir, 'preprocessing.json'), 'utf8')) as {
        steps: { op: string }[];
      };
      assert.deepEqual(
        spec.steps.map((s) => s.op),
        ['decode', 'resize', 'centerCrop', 'channels', 'normalize', 'layout'],
      );

      // The bundle in a fresh project: same head, so the same probabilities as the exported graph.
      const other = Project.create(path.join(tmpDir(), `import-${strategy}.fsl`));
      const imported = importModelBundle(other, dir, resolveBackbone);
      const back = loadHead(other, imported).head;
      const img = project.images.list()[5];
      const bytes = project.images.bytes(img?.sha256 as string) as Buffer;
      const session = await QueuedSession.create(path.join(dir, 'model.onnx'), { threads: 1 });
      const x = new Float32Array(tensorSize(backbone.spec));
      await preprocessInto(bytes, backbone.spec, x, 0);
      const onnxOut = (await session.run({ input: new ort.Tensor('float32', x, [1, 3, 224, 224]) }))
        .probabilities?.data as Float32Array;
      await session.release();
      const appOut = predictProba(back, await backbone.embed(x, 1));
      for (let c = 0; c < appOut.length; c++)
        assert.ok(Math.abs((onnxOut[c] as number) - (appOut[c] as number)) <= 1e-4);
      other.close();
    }
  },
);

test(
  'export of a last-stage model: the stored graph reproduces itself, with preprocessing and card',
  { skip, timeout: 180_000 },
  async () => {
    const { trainFinetuneModel } = await import('../../src/main/engine/finetune/train-finetune.ts');
    const { DEFAULT_AUGMENT } = await import('../../src/shared/augment.ts');
    const entry = resolveBackbone(SQUEEZENET);
    const r = await trainFinetuneModel(project, entry, {
      strategy: 'last-stage',
      epochs: 2,
      seed: 4,
      views: 2,
      augment: DEFAULT_AUGMENT,
    });
    assert.equal(r.strategy, 'last-stage');
    assert.ok(r.estimate, 'a validation split gives an estimate (≥ 10 images per class)');
    const dir = path.join(tmpDir(), 'bundle-last-stage');
    const e = await exportModel(project, r.modelId, entry, backbone, dir);
    assert.ok(
      e.parity.passed && e.parity.images > 0 && e.parity.maxProbabilityDifference <= 1e-4,
      JSON.stringify(e.parity),
    );
    const card = fs.readFileSync(path.join(dir, 'model-card.md'), 'utf8');
    assert.match(card, /last-stage \(fine-tuned\)/);
    assert.match(card, /Estimated by hold-out, n = \d+,/);
    assert.match(card, /Calibration: ECE [\d.]+ % \(10 bins, n = \d+, cross-fitted halves of the hold-out/);
    // Its settings in words: the augmentation, the epochs' history and the placement are not objects.
    assert.doesNotMatch(card, /object Object/);
    assert.match(card, /augment = horizontal flip, rotation ±\d+°/);
    assert.match(card, /history = 1: loss [\d.]+, validation [\d.]+ %; 2: loss/);
    const other = Project.create(path.join(tmpDir(), 'import-last-stage.fsl'));
    const id = importModelBundle(other, dir, resolveBackbone);
    assert.equal(other.models.get(id)?.strategy, 'last-stage');
    other.close();
  },
);
