// The main-process side of the contract: validates every input from `unknown`, runs the handler, and
// returns errors as data. Long work runs as jobs that stream events. Transport-agnostic: the browser host
// and Electron's utility process both feed it requests and forward its events.

import { windowed } from '../engine/image/windowing.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  INPUTS,
  type Channel,
  type DatasetWarning,
  type JobEvent,
  type Output,
  type ParsedInput,
} from '../../shared/contract.ts';
import type { RejectCode } from '../../shared/domain.ts';
import { FewShotError, toErrorData, type Result } from '../../shared/errors.ts';
import { augmentPreview } from '../engine/augment/augment.ts';
import { Backbone } from '../engine/backbones/backbone.ts';
import { listBackbones, resolveBackbone, userModelsDir } from '../engine/backbones/registry.ts';
import { DEFAULT_AUGMENT } from '../../shared/augment.ts';
import { classifyFolder } from '../engine/batch/classify-folder.ts';
import { loadDataset } from '../engine/classify/dataset.ts';
import { decoder } from '../engine/image/decode.ts';
import { importFolder } from '../engine/import/import-folder.ts';
import { computeReview } from '../engine/review.ts';
import { isFinetuned, loadModelRunner } from '../engine/model-runner.ts';
import { exportModel, findModel } from '../engine/export/bundle.ts';
import { renderBatchReport } from '../engine/report/batch-report.ts';
import { renderEvaluationReport } from '../engine/report/evaluation-report.ts';
import { trainModel } from '../engine/train.ts';
import { softwareVersions } from '../engine/versions.ts';
import { Project } from '../store/project.ts';
import { checkProjectFile } from '../store/corruption.ts';
import { findBackups, recoverProject, restoreBackup } from '../store/recover.ts';
import { JobManager, type JobContext } from './jobs.ts';
import { datasetWarnings } from '../engine/dataset-warnings.ts';

type Handler<C extends Channel> = (input: ParsedInput<C>) => Promise<Output<C>>;

export interface BackendOptions {
  /** Where recent projects are remembered. */
  dataDir: string;
  transport: 'electron' | 'websocket';
  onEvent: (e: JobEvent) => void;
}

export class Backend {
  private project: Project | null = null;
  private readonly backbones = new Map<string, Promise<Backbone>>();
  readonly jobs: JobManager;
  private readonly handlers: { [C in Channel]: Handler<C> };

  constructor(private readonly options: BackendOptions) {
    this.jobs = new JobManager(options.onEvent);
    this.handlers = {
      'app.info': async () => ({
        version: softwareVersions().app ?? '0',
        platform: `${process.platform}-${process.arch}`,
        userModelsDir: userModelsDir(),
        transport: options.transport,
      }),
      'project.create': async ({ file }) => this.setProject(Project.create(this.projectPath(file))),
      // A damaged file is reported (PROJECT_CORRUPT) before anything reads it; the window then offers
      // its backups or a recovery into a new file (see store/recover.ts).
      'project.open': async ({ file }) => this.setProject(Project.open(path.resolve(file), { check: true })),
      'project.settings': async ({ highBitDepth }) => {
        const p = this.requireProject();
        if (highBitDepth) p.setHighBitDepth(highBitDepth);
        return this.info(p);
      },
      'project.recovery': async ({ file }) => {
        const abs = this.existing(file);
        return { file: abs, problems: checkProjectFile(abs), backups: findBackups(abs) };
      },
      'project.recover': async ({ file }) => recoverProject(this.existing(file)),
      'project.restore': async ({ file, backup }) =>
        this.setProject(
          Project.open(restoreBackup(this.existing(backup), this.existing(file)), { check: true }),
        ),
      'project.current': async () => (this.project ? this.info(this.project) : null),
      'project.recent': async () => ({ files: this.recent().filter((f) => fs.existsSync(f)) }),
      'models.list': async () => {
        const problems: { dir: string; message: string }[] = [];
        return { models: listBackbones(problems), problems };
      },
      'dataset.import': async ({ folder, groupsCsv, frames }) => {
        const p = this.requireProject();
        return {
          jobId: this.jobs.start('import', (ctx) =>
            importFolder(p, folder, {
              ...(groupsCsv ? { groupsCsv } : {}),
              ...(frames ? { frames } : {}),
              signal: ctx.signal,
              onProgress: (e) => {
                if (e.phase === 'importing')
                  ctx.progress(
                    'importing',
                    e.processed,
                    Math.max(e.filesSeen, e.processed),
                    `${e.added} added, ${e.rejected} rejected`,
                  );
              },
            }),
          ),
        };
      },
      'dataset.summary': async () => {
        const p = this.requireProject();
        const classes = p.images
          .classes()
          .map((c) => ({ name: c.name, images: c.images, excluded: c.excluded }));
        const all = p.images.page({}, 0, 1).total;
        return {
          total: all,
          unlabelled: p.images.page({ className: null }, 0, 1).total,
          excluded: p.images.page({ excluded: true }, 0, 1).total,
          groups: p.images.groupCount(),
          classes,
          rejections: p.images
            .lastRejections()
            .map((r) => ({ path: r.relPath, code: r.code as RejectCode, message: r.message })),
        };
      },
      'dataset.images': async ({ className, excluded, offset, limit }) => {
        const r = this.requireProject().images.page(
          {
            ...(className !== undefined ? { className } : {}),
            ...(excluded !== undefined ? { excluded } : {}),
          },
          offset,
          limit,
        );
        return {
          total: r.total,
          images: r.images.map((i) => ({
            id: i.id,
            relPath: i.relPath,
            className: i.className,
            groupKey: i.groupKey,
            excluded: i.excluded,
            width: i.width,
            height: i.height,
          })),
        };
      },
      'dataset.relabel': async ({ imageIds, className }) => {
        const p = this.requireProject();
        const updated = p.db.transaction(() => {
          const n = p.images.relabel(imageIds, className);
          p.audit.append('relabel', { imageIds, to: className, updated: n });
          return n;
        })();
        return { updated };
      },
      'dataset.exclude': async ({ imageIds, excluded }) => {
        const p = this.requireProject();
        const updated = p.db.transaction(() => {
          const n = p.images.setExcluded(imageIds, excluded);
          p.audit.append(excluded ? 'exclude' : 'include', { imageIds, updated: n });
          return n;
        })();
        return { updated };
      },
      'dataset.warnings': async ({ backbone }) => ({ warnings: await this.warnings(backbone) }),
      'augment.preview': async ({ imageId, spec, n, seed }) => {
        const p = this.requireProject();
        const img = p.images.get(imageId);
        const bytes = img ? p.images.bytes(img.sha256) : null;
        if (!img || !bytes) throw new FewShotError('NOT_FOUND', `No image ${imageId}.`);
        // The same pixels training sees: the project's 16-bit policy first.
        const pngs = await augmentPreview(await windowed(bytes, p.highBitDepth()), spec, n, seed, {
          width: 224,
          height: 224,
          resizeShorter: 256,
        });
        return { variants: pngs.map((b) => `data:image/png;base64,${b.toString('base64')}`) };
      },
      'train.recommend': async () => recommend(this.requireProject()),
      'train.start': async ({
        backbone,
        strategy,
        seed,
        classBalanced,
        weightDecay,
        epochs,
        lr,
        augment,
      }) => {
        const p = this.requireProject();
        if (strategy === 'last-stage' || strategy === 'full') {
          const entry = resolveBackbone(backbone);
          const { trainFinetuneModel } = await import('../engine/finetune/train-finetune.ts');
          return {
            jobId: this.jobs.start('train', (ctx) =>
              trainFinetuneModel(p, entry, {
                strategy,
                seed,
                augment: augment ?? DEFAULT_AUGMENT,
                ...(epochs ? { epochs } : {}),
                ...(lr ? { lrHead: lr, lrBackbone: lr / 10 } : {}),
                signal: ctx.signal,
                onProgress: trainingProgress(ctx),
              }),
            ),
          };
        }
        const b = await this.backbone(backbone);
        return {
          jobId: this.jobs.start('train', (ctx) =>
            trainModel(p, b, {
              strategy,
              seed,
              ...(classBalanced !== undefined ? { classBalanced } : {}),
              ...(weightDecay !== undefined ? { weightDecay } : {}),
              signal: ctx.signal,
              onProgress: trainingProgress(ctx),
            }),
          ),
        };
      },
      'train.models': async () => ({ models: this.requireProject().models.list() }),
      'review.start': async ({ modelId, protocol }) => {
        const p = this.requireProject();
        const model = p.models.find(modelId);
        if (!model) throw new FewShotError('NOT_FOUND', `No trained model ${modelId}.`);
        const b = await this.backbone(model.backboneId);
        return {
          jobId: this.jobs.start('review', (ctx) =>
            computeReview(p, b, model, {
              ...(protocol ? { protocol } : {}),
              signal: ctx.signal,
              onProgress: (phase, d, t) => ctx.progress(phase, d, t),
            }),
          ),
        };
      },
      'batch.start': async ({ modelId, folder, out, sortInto, minConfidence }) => {
        const p = this.requireProject();
        const model = p.models.find(modelId);
        if (!model) throw new FewShotError('NOT_FOUND', `No trained model ${modelId}.`);
        const runner = await loadModelRunner(
          p,
          model,
          isFinetuned(model) ? undefined : await this.backbone(model.backboneId),
        );
        return {
          jobId: this.jobs.start('batch', async (ctx) => {
            try {
              return await classifyFolder(p, runner, model, folder, {
                outCsv: out,
                ...(sortInto ? { sortInto } : {}),
                minConfidence,
                signal: ctx.signal,
                onProgress: (e) =>
                  ctx.progress('classifying', e.processed, e.processed, `${e.errors} errors`),
              });
            } finally {
              await runner.release();
            }
          }),
        };
      },
      'batch.results': async ({ runId, filter, offset, limit }) => {
        const p = this.requireProject();
        if (!p.batches.get(runId)) throw new FewShotError('NOT_FOUND', `No batch run ${runId}.`);
        const rows = [...p.batches.iterate(runId)].filter((r) =>
          filter === 'all'
            ? true
            : filter === 'uncertain'
              ? r.status === 'uncertain'
              : filter === 'error'
                ? r.status === 'error'
                : r.predicted === filter.predicted && r.status !== 'error',
        );
        return { total: rows.length, rows: rows.slice(offset, offset + limit) };
      },
      'report.export': async (input) => {
        const p = this.requireProject();
        if (input.kind === 'batch') {
          return {
            jobId: this.jobs.start('report', async () =>
              writeFileAtomic(input.out, await renderBatchReport(p, input.runId)),
            ),
          };
        }
        const model = findModel(p, input.modelId);
        const b = await this.backbone(model.backboneId);
        return {
          jobId: this.jobs.start('report', async (ctx) => {
            const review = await computeReview(p, b, model, {
              signal: ctx.signal,
              onProgress: (phase, d, t) => ctx.progress(phase, d, t),
            });
            ctx.progress('checks', 0, 1);
            const warnings = await datasetWarnings(p, await loadDataset(p, b));
            ctx.progress('writing', 0, 1);
            const r = writeFileAtomic(
              input.out,
              await renderEvaluationReport({ project: p, ...review, warnings }),
            );
            p.db.transaction(() =>
              p.audit.append('report', { kind: 'evaluation', modelId: model.id, bytes: r.bytes }),
            )();
            return r;
          }),
        };
      },
      'model.export': async ({ modelId, out }) => {
        const p = this.requireProject();
        const model = findModel(p, modelId);
        const b = await this.backbone(model.backboneId);
        return {
          jobId: this.jobs.start('export', () =>
            exportModel(p, model.id, resolveBackbone(model.backboneId), b, out),
          ),
        };
      },
      'audit.list': async ({ limit }) => {
        const p = this.requireProject();
        const brokenAt = p.audit.verify();
        const entries = p.audit.list(100000).slice(-limit).reverse();
        return {
          entries: entries.map(({ prevHash: _prev, ...e }) => e),
          intact: brokenAt === null,
          brokenAt,
        };
      },
      'audit.export': async ({ out }) => {
        const p = this.requireProject();
        const entries = p.audit.list(1000000);
        // The whole chain with both hashes, so anyone can recompute it.
        const r = writeFileAtomic(
          out,
          Buffer.from(
            `${JSON.stringify({ project: p.meta('name'), verifiedIntact: p.audit.verify() === null, entries }, null, 2)}\n`,
          ),
        );
        return { out: r.out, entries: entries.length };
      },
      'jobs.cancel': async ({ jobId }) => ({ cancelled: this.jobs.cancel(jobId) }),
      'jobs.list': async () => ({
        jobs: this.project
          ? this.project.jobs
              .list(50)
              .map((j) => ({ id: j.id, kind: j.kind, status: j.status, createdAt: j.createdAt }))
          : [],
      }),
    };
  }

  /** The one entry point: `input` is untrusted until its schema accepts it. */
  async invoke(channel: string, input: unknown): Promise<Result<unknown>> {
    if (!Object.hasOwn(INPUTS, channel))
      return {
        ok: false,
        error: { code: 'INVALID_INPUT', message: `Unknown channel "${String(channel).slice(0, 100)}".` },
      };
    const c = channel as Channel;
    const parsed = INPUTS[c].safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        ok: false,
        error: {
          code: 'INVALID_INPUT',
          message: `${c}: ${issue ? `${issue.path.join('.') || 'input'}: ${issue.message}` : 'invalid input'}`,
        },
      };
    }
    try {
      const handler = this.handlers[c] as (i: unknown) => Promise<unknown>;
      return { ok: true, value: await handler(parsed.data) };
    } catch (e) {
      if (!(e instanceof FewShotError)) console.error(`${c} failed:`, e);
      return { ok: false, error: toErrorData(e) };
    }
  }

  /** A thumbnail (JPEG, no metadata) of a project image, longest side `size`. */
  async thumbnail(imageId: number, size: number): Promise<Buffer> {
    const p = this.requireProject();
    const img = p.images.get(imageId);
    const bytes = img ? p.images.bytes(img.sha256) : null;
    if (!img || !bytes) throw new FewShotError('NOT_FOUND', `No image ${imageId}.`);
    return decoder(await windowed(bytes, p.highBitDepth()))
      .resize(size, size, { fit: 'inside', withoutEnlargement: false })
      .jpeg({ quality: 82 })
      .toBuffer();
  }

  async close(): Promise<void> {
    for (const b of this.backbones.values()) await (await b.catch(() => null))?.release();
    this.backbones.clear();
    this.project?.close();
    this.project = null;
  }

  private existing(file: string): string {
    const abs = path.resolve(file);
    if (!fs.statSync(abs, { throwIfNoEntry: false })?.isFile())
      throw new FewShotError('NOT_FOUND', `No file at ${file}.`);
    return abs;
  }

  private projectPath(file: string): string {
    const abs = path.resolve(file);
    return path.extname(abs) ? abs : `${abs}.fsl`;
  }

  private setProject(p: Project): Output<'project.open'> {
    if (this.jobs.active > 0) {
      p.close();
      throw new FewShotError(
        'INVALID_INPUT',
        'A job is running; wait for it or cancel it before switching projects.',
      );
    }
    this.project?.close();
    this.project = p;
    const files = [p.file, ...this.recent().filter((f) => f !== p.file)].slice(0, 10);
    fs.mkdirSync(this.options.dataDir, { recursive: true });
    fs.writeFileSync(path.join(this.options.dataDir, 'recent.json'), JSON.stringify(files));
    return this.info(p);
  }

  private recent(): string[] {
    try {
      const v = JSON.parse(
        fs.readFileSync(path.join(this.options.dataDir, 'recent.json'), 'utf8'),
      ) as unknown;
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    } catch {
      return [];
    }
  }

  private info(p: Project): Output<'project.open'> {
    return {
      file: p.file,
      name: p.meta('name') ?? path.basename(p.file),
      images: p.images.count(),
      classes: p.images.classes().length,
      highBitDepth: p.highBitDepth(),
    };
  }

  private requireProject(): Project {
    if (!this.project) throw new FewShotError('NOT_FOUND', 'No project is open.');
    return this.project;
  }

  private backbone(id: string): Promise<Backbone> {
    let b = this.backbones.get(id);
    if (!b) {
      b = Backbone.load(resolveBackbone(id), { threads: Math.max(1, os.availableParallelism()) });
      b.catch(() => this.backbones.delete(id));
      this.backbones.set(id, b);
    }
    return b;
  }

  private async warnings(backboneId: string): Promise<DatasetWarning[]> {
    const p = this.requireProject();
    const b = await this.backbone(backboneId);
    return await datasetWarnings(p, await loadDataset(p, b));
  }
}

/**
 * The strategy for the data at hand (the literature's rule of thumb): ≤ 5 images per class → a head on
 * frozen features (prototype below 3); 5–20 → fine-tune the last stage; more → the last stage, or the
 * whole network when the images are far from ImageNet photographs (microscopy, radiology).
 */
export function recommend(p: Project): Output<'train.recommend'> {
  const counts = p.images
    .classes()
    .map((c) => c.images - c.excluded)
    .filter((n) => n > 0);
  const sorted = [...counts].sort((a, b) => a - b);
  const minShots = sorted[0] ?? 0;
  const medianShots = sorted.length ? (sorted[Math.floor((sorted.length - 1) / 2)] as number) : 0;
  const partial = listBackbones().some(
    (b) =>
      b.present &&
      b.supported &&
      (b.architecture === 'resnet18' ||
        b.architecture.startsWith('squeezenet') ||
        b.architecture.startsWith('mobilenet_v2')),
  );
  let strategy: Output<'train.recommend'>['strategy'];
  let reason: string;
  if (minShots < 3) {
    strategy = 'prototype';
    reason = `The smallest class has ${minShots} image${minShots === 1 ? '' : 's'}: with 1–2 images per class a class mean is steadier than anything fitted.`;
  } else if (minShots <= 5 || !partial) {
    strategy = 'linear';
    reason = `The smallest class has ${minShots} images: too few to change the network itself; a linear head on its features is the safe choice${partial ? '' : ' (partial fine-tuning needs a ResNet18, SqueezeNet or MobileNetV2 backbone)'}.`;
  } else if (minShots <= 20) {
    strategy = 'last-stage';
    reason = `The smallest class has ${minShots} images: enough to adapt the last stage of the network to your images, while the earlier layers stay as pretrained.`;
  } else {
    strategy = 'last-stage';
    reason = `Every class has more than 20 images: adapt the last stage; if your images are far from everyday photographs (microscopy, radiology), try a full fine-tune and compare the two on the Review screen.`;
  }
  return {
    strategy,
    reason,
    minShots,
    medianShots,
    options: [
      {
        strategy: 'prototype',
        label: 'Prototype (nearest class mean)',
        available: true,
        note: 'Works from one image per class; nothing to tune.',
      },
      {
        strategy: 'linear',
        label: 'Frozen backbone + linear head',
        available: true,
        note: 'Logistic regression on the features; weight decay tuned by cross-validation.',
      },
      {
        strategy: 'last-stage',
        label: 'Partial unfreeze (last stage: ResNet18 layer4, SqueezeNet fire9, MobileNetV2 block 16)',
        available: partial,
        note: partial
          ? 'Retrains the last stage and a new head with augmentation; the rest stays frozen.'
          : 'Needs a ResNet18, SqueezeNet or MobileNetV2 backbone.',
      },
      {
        strategy: 'full',
        label: 'Full fine-tune',
        available: true,
        note: 'Retrains every layer: slow on a CPU, best far from ImageNet with more than 20 images per class.',
      },
    ],
  };
}

/** Training progress to job events, the loss riding along for the live chart. */
function trainingProgress(
  ctx: JobContext,
): (e: { phase: string; done: number; total: number; loss?: number }) => void {
  return (e) =>
    ctx.progress(e.phase, e.done, e.total, undefined, e.loss === undefined ? undefined : { loss: e.loss });
}

function writeFileAtomic(file: string, data: Buffer): { out: string; bytes: number } {
  const out = path.resolve(file);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, out);
  return { out, bytes: data.length };
}

export function defaultDataDir(): string {
  return process.env.FEWSHOT_DATA_DIR ?? path.join(os.homedir(), '.fewshot-lab');
}
