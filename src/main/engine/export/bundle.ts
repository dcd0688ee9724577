// The model export bundle: model.onnx (backbone + head, one graph), preprocessing.json, labels.json,
// model-card.md and parity.json — a check that the exported graph, run through ONNX Runtime, gives the
// app's predictions on the training images. A bundle imports back into a project.

import { PERCENTILE_WINDOW } from '../../../shared/domain.ts';
import { modelHighBitDepth, windowed } from '../image/windowing.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FewShotError } from '../../../shared/errors.ts';
import type { ModelRecord } from '../../../shared/results.ts';
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
import { OnnxClassifier } from '../finetune/onnx-classifier.ts';
import { isFinetuned, loadModelRunner, type ModelRunner } from '../model-runner.ts';
import { softwareVersions } from '../versions.ts';
import { classifierGraph, HEAD_METADATA_KEY } from './classifier-graph.ts';
import { modelCard } from './model-card.ts';

export interface Parity {
  images: number;
  sameClass: number;
  maxProbabilityDifference: number;
  passed: boolean;
}

export interface ExportResult {
  dir: string;
  files: string[];
  modelSha256: string;
  parity: Parity;
}

/** sha256 over the sorted "image-sha256 label" lines: one number for "this exact labelled data set". */
export function datasetFingerprint(items: { sha256: string; class: string }[]): string {
  const lines = items.map((i) => `${i.sha256} ${i.class}`).sort();
  return crypto.createHash('sha256').update(lines.join('\n')).digest('hex');
}

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

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Runs the exported graph and the app's own path on the same images and compares them. */
async function parityCheck(
  project: Project,
  model: ModelRecord,
  runner: ModelRunner,
  onnx: Uint8Array,
  spec: PreprocessSpec,
  limit: number,
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
    for await (const batch of embedAll(runner.embedder, items, { batchSize: 16 })) {
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
    passed: n > 0 && sameClass === n && maxDiff <= 1e-4,
  };
}

export async function exportModel(
  project: Project,
  modelId: string,
  entry: ResolvedBackbone,
  backbone: Backbone,
  outDir: string,
  options: { parityImages?: number } = {},
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
  fs.mkdirSync(outDir, { recursive: true });
  const fingerprint = datasetFingerprint(model.trainingSet);
  const metadata = {
    'fewshot.model_id': model.id,
    'fewshot.strategy': model.strategy,
    'fewshot.backbone': model.backboneId,
    'fewshot.backbone_sha256': model.backboneSha256,
    'fewshot.seed': String(model.seed),
    'fewshot.dataset_fingerprint': fingerprint,
    'fewshot.labels': JSON.stringify(model.classes),
  };
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
  const onnx = encodeModel(graph);
  const modelSha256 = crypto.createHash('sha256').update(onnx).digest('hex');
  writeAtomic(path.join(outDir, 'model.onnx'), onnx);
  const spec = entry.input;
  const C = model.classes.length;
  writeAtomic(
    path.join(outDir, 'preprocessing.json'),
    `${JSON.stringify(
      {
        input: {
          name: spec.name,
          layout: spec.layout,
          dtype: 'float32',
          shape:
            spec.layout === 'NCHW' ? ['N', 3, spec.height, spec.width] : ['N', spec.height, spec.width, 3],
        },
        outputs: { probabilities: ['N', C], logits: ['N', C] },
        steps: [
          {
            op: 'decode',
            policy:
              'apply EXIF orientation; first frame/page; alpha composited onto white; greyscale replicated to RGB; CMYK converted to sRGB; 16-bit samples by highBitDepth below',
            highBitDepth:
              modelHighBitDepth(model) === 'percentile'
                ? {
                    policy: 'percentile',
                    low: PERCENTILE_WINDOW.low,
                    high: PERCENTILE_WINDOW.high,
                    rule: "16-bit PNG/TIFF only: the image's low and high percentiles of all samples (nearest rank) map to 0 and 255, values outside are clipped; a flat image uses the full range",
                  }
                : { policy: 'full', rule: '16-bit samples map linearly from 0..65535 to 0..255' },
            dicom:
              'Modality LUT, then the VOI window in the file (else the full range), MONOCHROME1 inverted',
          },
          {
            op: 'resize',
            shorterSide: spec.resizeShorter ?? 256,
            interpolation: 'bilinear, antialiased (libvips linear kernel)',
            rounding: 'longer side = floor(shorter * long / short)',
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
      },
      null,
      2,
    )}\n`,
  );
  writeAtomic(path.join(outDir, 'labels.json'), `${JSON.stringify(model.classes, null, 2)}\n`);
  const runner = await loadModelRunner(project, model, backbone);
  let parity: Parity;
  try {
    parity = await parityCheck(project, model, runner, onnx, spec, options.parityImages ?? 200);
  } finally {
    await runner.release();
  }
  writeAtomic(path.join(outDir, 'parity.json'), `${JSON.stringify(parity, null, 2)}\n`);
  writeAtomic(
    path.join(outDir, 'model-card.md'),
    modelCard({
      model,
      head,
      fingerprint,
      modelSha256,
      parity,
      software: softwareVersions(),
      excluded: project.images.page({ excluded: true }, 0, 1).total,
    }),
  );
  project.db.transaction(() =>
    project.audit.append('export', { modelId: model.id, modelSha256, parity: parity.passed }),
  )();
  if (!parity.passed) {
    throw new FewShotError(
      'INTERNAL',
      `The exported model does not reproduce the app's predictions (${parity.sameClass}/${parity.images} same class, max probability difference ${parity.maxProbabilityDifference}).`,
    );
  }
  return {
    dir: outDir,
    files: ['model.onnx', 'preprocessing.json', 'labels.json', 'model-card.md', 'parity.json'],
    modelSha256,
    parity,
  };
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
  const finetuned = strategy === 'last-stage' || strategy === 'full';
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
      strategy: strategy ?? head?.kind ?? 'linear',
      params: {
        ...(head ? { temperature: head.temperature } : {}),
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
