// The model export bundle: model.onnx (backbone + head, one graph, portable operators only),
// preprocessing.json, labels.json, model-card.md, test-vectors/ and parity.json — a check that the exported graph, run through ONNX Runtime, gives the
// app's predictions on the training images. A bundle imports back into a project.

import { PERCENTILE_WINDOW, type HighBitDepth } from '../../../shared/domain.ts';
import { modelHighBitDepth, windowed } from '../image/windowing.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../../shared/errors.ts';
import type { ExportSummary, ModelRecord } from '../../../shared/results.ts';
import { isFinetuned, isTrainStrategy } from '../../../shared/strategies.ts';
import { fsyncFolder, temporaryPath, writeFileAtomic } from '../atomic-file.ts';
import { datasetFingerprint } from '../data-fingerprint.ts';
import type { Project } from '../../store/project.ts';
import { Backbone, backboneGraph, featureGraph, fileSha256 } from '../backbones/backbone.ts';
import type { ResolvedBackbone } from '../backbones/registry.ts';
import type { Head } from '../classify/heads.ts';
import { argmax } from '../classify/linalg.ts';
import { deserializeHead } from '../classify/serialize.ts';
import { embedAll } from '../features/pipeline.ts';
import { preprocessInto, tensorSize } from '../image/preprocess.ts';
import { decodeModel, encodeModel, type OnnxModel } from '../onnx/model.ts';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import { OnnxClassifier } from '../onnx/onnx-classifier.ts';
import { loadModelRunner, type ModelRunner } from '../model-runner.ts';
import { softwareVersions } from '../versions.ts';
import { classifierGraph, HEAD_METADATA_KEY } from '../classify/classifier-graph.ts';
import { modelCard } from './model-card.ts';
import { TTA_KINDS, ttaLabel, ttaOfRun, ttaViews } from '../../../shared/tta.ts';
import { portableGraph } from './portable.ts';
import { buildTestVectors } from './test-vectors.ts';
import sharp from 'sharp';

const sharpVersions = sharp.versions as Record<string, string | undefined>;

/** The bundle's 16-bit policy, in the ONNX metadata (a model imported back reads files the same way). */
export const HIGH_BIT_DEPTH_METADATA_KEY = 'fewshot.high_bit_depth';

export type Parity = ExportSummary['parity'];

export type ExportResult = ExportSummary;

/** A model of the project by id or unique prefix; NOT_FOUND otherwise. */
export function findModel(project: Project, modelId: string): ModelRecord {
  const model = project.models.find(modelId);
  if (!model) throw new FewShotError('NOT_FOUND', `No trained model "${modelId}" in this project.`);
  return model;
}

export function loadHead(project: Project, modelId: string): { model: ModelRecord; head: Head } {
  const model = project.models.find(modelId);
  const artefact = model ? project.models.artefact(model.id) : null;
  if (!model || !artefact)
    throw new FewShotError('NOT_FOUND', `No trained model "${modelId}" in this project.`);
  return { model, head: deserializeHead(artefact) };
}

/** Runs the exported graph and the app's own path on the same images and compares them. */
async function parityCheck(
  project: Project,
  model: ModelRecord,
  runner: ModelRunner,
  onnx: Uint8Array,
  spec: PreprocessSpec,
  limit: number,
  tolerance: number,
  signal?: AbortSignal,
): Promise<Parity> {
  const exported = await OnnxClassifier.load(onnx, spec, { threads: 2 });
  let sameClass = 0;
  let maxDiff = 0;
  let n = 0;
  const policy = modelHighBitDepth(model);
  try {
    const items = model.trainingSet.slice(0, limit).map((t) => ({
      item: t,
      load: () => windowed(project.images.bytes(t.sha256) ?? Buffer.alloc(0), policy),
    }));
    for await (const batch of embedAll(runner.embedder, items, {
      batchSize: 16,
      ...(signal ? { signal } : {}),
    })) {
      for (const r of batch) {
        if (!r.ok) continue;
        const app = runner.probabilities(r.vector);
        const input = new Float32Array(tensorSize(spec));
        await preprocessInto(
          await windowed(project.images.bytes(r.item.sha256) as Buffer, policy),
          spec,
          input,
          0,
        );
        const out = await exported.embed(input, 1);
        if (argmax(out) === argmax(app)) sameClass++;
        for (let c = 0; c < app.length; c++)
          maxDiff = Math.max(maxDiff, Math.abs((out[c] as number) - (app[c] as number)));
        n++;
      }
    }
  } finally {
    await exported.release();
  }
  return {
    images: n,
    sameClass,
    maxProbabilityDifference: maxDiff,
    passed: n > 0 && sameClass === n && maxDiff <= tolerance,
  };
}

/** The largest probability difference the exported graph may show against the app. */
export const PARITY_TOLERANCE = 1e-4;

export async function exportModel(
  project: Project,
  modelId: string,
  entry: ResolvedBackbone,
  backbone: Backbone,
  outDir: string,
  options: { parityImages?: number; signal?: AbortSignal; onProgress?: (phase: string) => void } & {
    /** For tests: a tolerance no export can meet, to see a failed check leave nothing behind. */
    parityTolerance?: number;
  } = {},
): Promise<ExportResult> {
  const model = project.models.find(modelId);
  const artefact = model ? project.models.artefact(model.id) : null;
  if (!model || !artefact)
    throw new FewShotError('NOT_FOUND', `No trained model "${modelId}" in this project.`);
  if (entry.id !== model.backboneId || fileSha256(entry.path) !== model.backboneSha256) {
    throw new FewShotError(
      'MODEL_MISSING',
      `The model needs backbone ${model.backboneId} with sha256 ${model.backboneSha256.slice(0, 12)}…, which is not the installed file.`,
    );
  }
  const fingerprint = datasetFingerprint(model.trainingSet);
  const policy = modelHighBitDepth(model);
  const metadata = {
    'fewshot.model_id': model.id,
    'fewshot.strategy': model.strategy,
    'fewshot.backbone': model.backboneId,
    'fewshot.backbone_sha256': model.backboneSha256,
    'fewshot.seed': String(model.seed),
    'fewshot.dataset_fingerprint': fingerprint,
    'fewshot.labels': JSON.stringify(model.classes),
    [HIGH_BIT_DEPTH_METADATA_KEY]: policy,
  };
  options.onProgress?.('building the graph');
  let graph: OnnxModel;
  let head: Head | null = null;
  if (isFinetuned(model)) {
    // A fine-tuned model is already one graph, image to probabilities.
    const g = decodeModel(artefact);
    graph = { ...g, metadata: { ...g.metadata, ...metadata } };
  } else {
    head = deserializeHead(artefact);
    graph = classifierGraph(featureGraph(backboneGraph(entry), entry.output.name), head, metadata);
  }
  // Only operators every common ONNX consumer accepts (older graphs are rewritten; anything else stops here).
  const portable = portableGraph(graph);
  const onnx = encodeModel(portable.model);
  const modelSha256 = crypto.createHash('sha256').update(onnx).digest('hex');
  const spec = entry.input;

  // The check runs on the graph in memory: a graph that fails it is never written anywhere.
  options.onProgress?.('checking parity');
  const runner = await loadModelRunner(project, model, backbone);
  let parity: Parity;
  let vectors: Awaited<ReturnType<typeof buildTestVectors>> | null = null;
  try {
    parity = await parityCheck(
      project,
      model,
      runner,
      onnx,
      spec,
      options.parityImages ?? 200,
      options.parityTolerance ?? PARITY_TOLERANCE,
      options.signal,
    );
    // The test vectors go through the app's own path too, so the parity check covers them.
    if (parity.passed) {
      options.onProgress?.('writing test vectors');
      vectors = await buildTestVectors(project, model, onnx, spec, policy, runner);
    }
  } finally {
    await runner.release();
  }
  if (vectors && vectors.summary.appMaxDifference > (options.parityTolerance ?? PARITY_TOLERANCE))
    parity = { ...parity, passed: false };
  if (!parity.passed || !vectors) {
    throw new FewShotError(
      'INTERNAL',
      `The exported model does not reproduce the app's predictions (${parity.sameClass}/${parity.images} same class, max probability difference ${parity.maxProbabilityDifference}); nothing was written.`,
    );
  }
  if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Export cancelled; nothing was written.');
  const files: [string, string | Uint8Array][] = [
    ['model.onnx', onnx],
    [
      'preprocessing.json',
      `${JSON.stringify(
        {
          ...(preprocessingSpec(spec, policy, model.classes.length, portable) as object),
          testTimeAugmentation: ttaSpec(project, model),
        },
        null,
        2,
      )}\n`,
    ],
    ['labels.json', `${JSON.stringify(model.classes, null, 2)}\n`],
    ['parity.json', `${JSON.stringify(parity, null, 2)}\n`],
    [
      'model-card.md',
      modelCard({
        model,
        head,
        fingerprint,
        modelSha256,
        parity,
        software: softwareVersions(),
        excluded: project.images.page({ excluded: true }, 0, 1).total,
        vectors: vectors.summary,
        ops: portable.ops,
        opset: portable.opset,
      }),
    ],
    ...vectors.files,
  ];
  options.onProgress?.('writing');
  const dir = path.resolve(outDir);
  writeBundle(dir, files);
  project.db.transaction(() =>
    project.audit.append('export', { modelId: model.id, modelSha256, parity: parity.passed }),
  )();
  return { dir, files: files.map(([name]) => name), modelSha256, parity };
}

/**
 * A new folder is built beside its place and renamed into it, so the bundle appears whole; into an
 * existing folder each file is replaced atomically.
 */
function writeBundle(dir: string, files: [string, string | Uint8Array][]): void {
  const fresh = !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;
  if (!fresh) {
    for (const [name, data] of files) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileAtomic(path.join(dir, name), data);
    }
    return;
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = temporaryPath(dir);
  try {
    fs.mkdirSync(tmp);
    for (const [name, data] of files) {
      fs.mkdirSync(path.dirname(path.join(tmp, name)), { recursive: true });
      writeFileAtomic(path.join(tmp, name), data);
    }
    if (fs.existsSync(dir)) fs.rmdirSync(dir); // the empty folder the user picked
    fs.renameSync(tmp, dir);
    fsyncFolder(path.dirname(dir));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** preprocessing.json: every step from file bytes to the input tensor. */
function preprocessingSpec(
  spec: PreprocessSpec,
  policy: HighBitDepth,
  classes: number,
  graph: { ops: string[]; opset: number },
): unknown {
  return {
    graph: { opset: graph.opset, operators: graph.ops },
    input: {
      name: spec.name,
      layout: spec.layout,
      dtype: 'float32',
      shape: spec.layout === 'NCHW' ? ['N', 3, spec.height, spec.width] : ['N', spec.height, spec.width, 3],
    },
    outputs: { probabilities: ['N', classes], logits: ['N', classes] },
    steps: [
      {
        op: 'decode',
        policy:
          'apply EXIF orientation; first frame/page; alpha composited onto white; greyscale replicated to RGB; CMYK converted to sRGB; 16-bit samples by highBitDepth below',
        highBitDepth:
          policy === 'percentile'
            ? {
                policy: 'percentile',
                low: PERCENTILE_WINDOW.low,
                high: PERCENTILE_WINDOW.high,
                rule: "16-bit PNG/TIFF only: the image's low and high percentiles of all samples (nearest rank) map to 0 and 255, values outside are clipped; a flat image uses the full range",
              }
            : { policy: 'full', rule: '16-bit samples map linearly from 0..65535 to 0..255' },
        dicom: 'Modality LUT, then the VOI window in the file (else the full range), MONOCHROME1 inverted',
      },
      {
        op: 'resize',
        shorterSide: spec.resizeShorter ?? 256,
        interpolation: 'bilinear, antialiased (libvips linear kernel)',
        implementation: `libvips ${sharpVersions.vips ?? '?'} through sharp ${sharpVersions.sharp ?? '?'}: resize(width, height, { fit: 'fill', kernel: 'linear' }) from the decoded 8-bit sRGB image, output rounded to 8 bits`,
        rounding: 'longer side = floor(shorter * long / short)',
        otherLibraries:
          "Pillow's Image.resize(size, BILINEAR) (torchvision's Resize on PIL images) differs slightly; test-vectors/vectors.json states what it changes in the probabilities",
      },
      {
        op: 'centerCrop',
        height: spec.height,
        width: spec.width,
        offsets: "Python round((size - crop) / 2), halves to even, as torchvision's CenterCrop",
      },
      { op: 'channels', order: spec.channels },
      {
        op: 'normalize',
        formula: 'y = (x - mean) * scale / std, x in 0..255',
        mean: spec.mean,
        scale: spec.scale,
        std: spec.std,
      },
      { op: 'layout', layout: spec.layout },
    ],
  };
}

/**
 * What the exported graph does about test-time augmentation (nothing: it is single-view) and how to
 * reproduce the app's view-averaged probabilities, with the temperatures its batch runs used.
 */
function ttaSpec(project: Project, model: ModelRecord): unknown {
  const runs = project.batches
    .list()
    .filter((r) => r.modelId === model.id)
    .map((r) => ({ runId: r.id, tta: ttaOfRun(r.params) }))
    .filter((r) => r.tta !== null);
  return {
    exportedGraph: 'single view: model.onnx scores the one centre crop described above',
    inTheApp: `Review and batch classification can average probabilities over views: ${TTA_KINDS.filter(
      (k) => k !== 'none',
    )
      .map((k) => `"${k}" = ${ttaLabel(k)}`)
      .join('; ')}`,
    toReproduce:
      'cut each view from the image resized as in "resize" (corners at the resized image\'s corners, "flip" mirrors left-right), run model.onnx on every view, and average softmax(logits / T) over the views, with T the temperature fitted for those views (below); with the model\'s own temperature, averaging the "probabilities" output is the same thing',
    views: Object.fromEntries(TTA_KINDS.filter((k) => k !== 'none').map((k) => [k, ttaViews(k)])),
    batchRuns: runs,
  };
}

/** The 16-bit policy a bundle was made with: its metadata, else (older bundles) its preprocessing.json. */
function bundleHighBitDepth(meta: Record<string, string>, dir: string): HighBitDepth {
  const m = meta[HIGH_BIT_DEPTH_METADATA_KEY];
  if (m === 'full' || m === 'percentile') return m;
  try {
    const pre = JSON.parse(fs.readFileSync(path.join(dir, 'preprocessing.json'), 'utf8')) as {
      steps?: { op?: string; highBitDepth?: { policy?: string } }[];
    };
    const policy = pre.steps?.find((s) => s.op === 'decode')?.highBitDepth?.policy;
    return policy === 'percentile' ? 'percentile' : 'full';
  } catch {
    return 'full';
  }
}

/** Imports an exported bundle as a model of this project (its backbone must be installed, same file). */
export function importModelBundle(
  project: Project,
  dir: string,
  installed: (id: string) => ResolvedBackbone,
): string {
  const file = path.join(dir, 'model.onnx');
  if (!fs.existsSync(file)) throw new FewShotError('NOT_FOUND', `No model.onnx in ${dir}.`);
  const meta = decodeModel(fs.readFileSync(file)).metadata;
  const headB64 = meta[HEAD_METADATA_KEY];
  const backboneId = meta['fewshot.backbone'];
  const backboneSha = meta['fewshot.backbone_sha256'];
  const strategy = meta['fewshot.strategy'];
  const finetuned = strategy !== undefined && isFinetuned(strategy);
  if (!backboneId || !backboneSha || (!finetuned && !headB64)) {
    throw new FewShotError(
      'MODEL_INVALID',
      'This model.onnx was not exported by FewShot Lab (no model metadata).',
    );
  }
  // A fine-tuned model is stored as its whole graph; a head model as its head (the backbone is shared).
  const head = finetuned ? null : deserializeHead(Buffer.from(headB64 as string, 'base64'));
  const classes = head ? head.classes : (JSON.parse(meta['fewshot.labels'] ?? '[]') as string[]);
  const labels = JSON.parse(fs.readFileSync(path.join(dir, 'labels.json'), 'utf8')) as unknown;
  if (JSON.stringify(labels) !== JSON.stringify(classes))
    throw new FewShotError('MODEL_INVALID', 'labels.json does not match the model.');
  if (fileSha256(installed(backboneId).path) !== backboneSha) {
    throw new FewShotError(
      'MODEL_MISSING',
      `Backbone ${backboneId} is installed, but not the file this model was trained with.`,
    );
  }
  return project.db.transaction(() => {
    const id = project.models.insert({
      name: `imported from ${path.basename(dir)}`,
      backboneId,
      backboneSha256: backboneSha,
      strategy: strategy !== undefined && isTrainStrategy(strategy) ? strategy : (head?.kind ?? 'linear'),
      params: {
        ...(head ? { temperature: head.temperature } : {}),
        // The pixels the model was trained on: batch classification reads new files the same way.
        highBitDepth: bundleHighBitDepth(meta, dir),
        importedFrom: path.basename(dir),
        sourceModelId: meta['fewshot.model_id'] ?? null,
      },
      seed: Number(meta['fewshot.seed'] ?? 0),
      classes,
      trainingSet: [],
      metrics: null,
      software: softwareVersions(),
      artefact: finetuned ? fs.readFileSync(file) : Buffer.from(headB64 as string, 'base64'),
      jobId: null,
    });
    project.audit.append('import-model', { modelId: id, from: path.basename(dir) });
    return id;
  })();
}
