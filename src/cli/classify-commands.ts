// `fewshot train | evaluate | curve | trained | classify`: classifiers, evaluation and batch classification.

import { FewShotError } from '../shared/errors.ts';
import { Backbone } from '../main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../main/engine/backbones/registry.ts';
import { classifyFolder } from '../main/engine/batch/classify-folder.ts';
import { loadDataset } from '../main/engine/classify/dataset.ts';
import type { Strategy } from '../main/engine/classify/heads.ts';
import { evaluate, learningCurve, type Protocol } from '../main/engine/evaluate/evaluate.ts';
import type { Estimate } from '../main/engine/evaluate/intervals.ts';
import { trainModel } from '../main/engine/train.ts';
import type { ResolvedBackbone } from '../main/engine/backbones/registry.ts';
import type { FinetuneStrategy } from '../main/engine/finetune/finetune.ts';
import type { FinetuneRunOptions } from '../main/engine/finetune/train-finetune.ts';
import { parseAugment } from '../shared/augment.ts';
import { loadModelRunner } from '../main/engine/model-runner.ts';
import type { Project } from '../main/store/project.ts';
import type { CliContext, Command } from './commands.ts';
import { intOption, need, numberOption, stringOption, withProject } from './options.ts';

function strategyOption(ctx: CliContext): Strategy {
  const s = stringOption(ctx, 'strategy');
  if (s !== 'prototype' && s !== 'linear')
    throw new FewShotError('INVALID_INPUT', '--strategy must be prototype, linear, last-stage or full.');
  return s;
}

function finetuneStrategy(ctx: CliContext): FinetuneStrategy | null {
  const s = stringOption(ctx, 'strategy');
  return s === 'last-stage' || s === 'full' ? s : null;
}

/** The fine-tuning settings from --epochs, --lr, --lr-backbone, --augment, --device, --seed. */
function finetuneOptions(ctx: CliContext, strategy: FinetuneStrategy): FinetuneRunOptions {
  const device = stringOption(ctx, 'device');
  if (device && !['cpu', 'gpu', 'auto'].includes(device))
    throw new FewShotError('INVALID_INPUT', '--device is cpu, gpu or auto.');
  const lr = numberOption(ctx, 'lr', 1e-3);
  return {
    strategy,
    epochs: intOption(ctx, 'epochs', 10),
    lrHead: lr,
    lrBackbone: numberOption(ctx, 'lr-backbone', lr / 10),
    augment: augmentOption(ctx),
    seed: intOption(ctx, 'seed', 0, true),
    ...(ctx.options['adapt-bn'] ? { adaptBatchNorm: true } : {}),
    ...(device ? { device: device as 'cpu' | 'gpu' | 'auto' } : {}),
    onProgress: (pr) =>
      ctx.progress(
        `${pr.phase}: ${pr.done}/${pr.total}${pr.loss !== undefined ? ` loss ${pr.loss.toFixed(4)}` : ''}`,
      ),
  };
}

export function augmentOption(ctx: CliContext) {
  try {
    return parseAugment(stringOption(ctx, 'augment'));
  } catch (e) {
    throw new FewShotError('INVALID_INPUT', (e as Error).message);
  }
}

/** TensorFlow.js loads only for commands that fine-tune. */
function finetuneModule(): Promise<typeof import('../main/engine/finetune/train-finetune.ts')> {
  return import('../main/engine/finetune/train-finetune.ts');
}

function backboneEntry(ctx: CliContext): ResolvedBackbone {
  const id = stringOption(ctx, 'backbone');
  if (!id) throw new FewShotError('INVALID_INPUT', '--backbone is required (see fewshot models list).');
  return resolveBackbone(id);
}

async function withBackbone<T>(ctx: CliContext, fn: (b: Backbone) => Promise<T>): Promise<T> {
  const id = stringOption(ctx, 'backbone');
  if (!id) throw new FewShotError('INVALID_INPUT', '--backbone is required (see fewshot models list).');
  const b = await Backbone.load(resolveBackbone(id));
  try {
    return await fn(b);
  } finally {
    await b.release();
  }
}

export function fmt(e: Estimate): string {
  return `${(e.mean * 100).toFixed(1)} % [${(e.ci95[0] * 100).toFixed(1)}, ${(e.ci95[1] * 100).toFixed(1)}]`;
}

export function protocolOption(ctx: CliContext): Protocol {
  const chosen = ['shots', 'folds', 'loo', 'holdout'].filter((k) => ctx.options[k] !== undefined);
  if (chosen.length > 1)
    throw new FewShotError('INVALID_INPUT', 'Choose one of --shots, --folds, --loo, --holdout.');
  if (ctx.options.loo) return { kind: 'loo' };
  if (ctx.options.folds !== undefined) return { kind: 'kfold', folds: intOption(ctx, 'folds', 5) };
  if (ctx.options.holdout !== undefined) {
    const f = numberOption(ctx, 'holdout', 0.2);
    if (!(f > 0 && f < 1))
      throw new FewShotError('INVALID_INPUT', '--holdout is the test fraction, between 0 and 1.');
    return { kind: 'holdout', testFraction: f };
  }
  const ways = ctx.options.ways === undefined ? undefined : intOption(ctx, 'ways', 2);
  const queries = ctx.options.queries === undefined ? undefined : intOption(ctx, 'queries', 15);
  return {
    kind: 'episodes',
    shots: intOption(ctx, 'shots', 5),
    episodes: intOption(ctx, 'episodes', 100),
    ...(ways ? { ways } : {}),
    ...(queries ? { queries } : {}),
  };
}

const train: Command = async (args, ctx) => {
  const [file] = need(
    args,
    1,
    'train FILE --backbone ID --strategy prototype|linear|last-stage|full [--seed N]',
  ) as [string];
  const ft = finetuneStrategy(ctx);
  if (ft) {
    return withProject(file, async (p) => {
      const r = await (
        await finetuneModule()
      ).trainFinetuneModel(p, backboneEntry(ctx), {
        ...finetuneOptions(ctx, ft),
        ...(stringOption(ctx, 'name') ? { name: stringOption(ctx, 'name') } : {}),
      });
      ctx.log(
        `Trained model ${r.modelId} (${r.strategy} on ${r.backbone}, ${r.images} images) in ${r.seconds.toFixed(1)} s on ${String(r.params.backend)}`,
      );
      if (r.estimate)
        ctx.log(
          `Validation accuracy: ${fmt(r.estimate.accuracy)}; balanced ${fmt(r.estimate.balancedAccuracy)}; macro-F1 ${fmt(r.estimate.macroF1)}`,
        );
      return r;
    });
  }
  const strategy = strategyOption(ctx);
  return withProject(file, (p) =>
    withBackbone(ctx, async (b) => {
      const r = await trainModel(p, b, {
        strategy,
        seed: intOption(ctx, 'seed', 0, true),
        ...(ctx.options['class-balanced'] ? { classBalanced: true } : {}),
        ...(ctx.options['weight-decay'] !== undefined
          ? { weightDecay: numberOption(ctx, 'weight-decay', 1e-3) }
          : {}),
        ...(stringOption(ctx, 'name') ? { name: stringOption(ctx, 'name') } : {}),
        onProgress: (pr) => ctx.progress(`${pr.phase}: ${pr.done}/${pr.total}`),
      });
      ctx.log(
        `Trained model ${r.modelId} (${r.strategy} on ${r.backbone}, ${r.images} images, ${r.classes.length} classes) in ${r.seconds.toFixed(1)} s`,
      );
      if (r.estimate)
        ctx.log(
          `Estimated accuracy (${r.estimate.protocol.kind}): ${fmt(r.estimate.accuracy)}; balanced ${fmt(r.estimate.balancedAccuracy)}; macro-F1 ${fmt(r.estimate.macroF1)}`,
        );
      return r;
    }),
  );
};

const evaluateCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'evaluate FILE --backbone ID --strategy S [protocol]') as [string];
  const protocol = protocolOption(ctx);
  const ft = finetuneStrategy(ctx);
  if (ft) {
    return withProject(file, async (p) => {
      const r = await (
        await finetuneModule()
      ).evaluateFinetune(p, backboneEntry(ctx), protocol, {
        ...finetuneOptions(ctx, ft),
        groupAware: !ctx.options['no-groups'],
      });
      ctx.log(
        `${ft} on ${String(ctx.options.backbone)} · ${protocol.kind}: accuracy ${fmt(r.accuracy)}; balanced ${fmt(r.balancedAccuracy)}; macro-F1 ${fmt(r.macroF1)}`,
      );
      const { predictions: _omit, ...rest } = r;
      return { ...rest, predictions: r.predictions.length };
    });
  }
  const strategy = strategyOption(ctx);
  return withProject(file, (p) =>
    withBackbone(ctx, async (b) => {
      const data = await loadDataset(p, b);
      const r = evaluate(data, {
        strategy,
        protocol,
        seed: intOption(ctx, 'seed', 0, true),
        groupAware: !ctx.options['no-groups'],
        onProgress: (d, t) => ctx.progress(`evaluating: ${d}/${t}`),
      });
      ctx.log(
        `${strategy} on ${b.id} · ${protocol.kind}${r.shots !== null ? ` · ${r.ways}-way ${r.shots}-shot × ${r.episodes}` : ''}${r.folds !== null ? ` · ${r.folds} folds` : ''} · groups ${r.groupAware ? 'kept whole' : 'ignored'}`,
      );
      ctx.log(`accuracy          ${fmt(r.accuracy)} (${r.accuracy.method})`);
      ctx.log(`balanced accuracy ${fmt(r.balancedAccuracy)}`);
      ctx.log(`macro-F1          ${fmt(r.macroF1)}`);
      if (r.rocAucOvr) ctx.log(`ROC AUC (OvR)     ${fmt(r.rocAucOvr)}`);
      for (const c of r.perClass)
        ctx.log(
          `  ${c.class.padEnd(16)} P ${fmt(c.precision)}  R ${fmt(c.recall)}  F1 ${fmt(c.f1)}  n=${c.support}`,
        );
      const { predictions: _omit, ...rest } = r;
      return { ...rest, predictions: r.predictions.length };
    }),
  );
};

const curve: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'curve FILE --backbone ID --strategy S') as [string];
  const strategy = strategyOption(ctx);
  return withProject(file, (p) =>
    withBackbone(ctx, async (b) => {
      const data = await loadDataset(p, b);
      const points = learningCurve(data, {
        strategy,
        seed: intOption(ctx, 'seed', 0, true),
        episodes: intOption(ctx, 'episodes', 50),
        groupAware: !ctx.options['no-groups'],
      });
      for (const pt of points)
        ctx.log(
          `${String(pt.shots).padStart(3)} shots: accuracy ${fmt(pt.accuracy)}  macro-F1 ${fmt(pt.macroF1)}`,
        );
      return { strategy, backbone: b.id, points };
    }),
  );
};

const trained: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'trained FILE') as [string];
  return withProject(file, async (p) => {
    const models = p.models.list();
    for (const m of models)
      ctx.log(
        `${m.id.slice(0, 8)}  ${m.strategy.padEnd(10)} ${m.backboneId.padEnd(26)} ${m.classes.length} classes  ${m.trainingSet.length} images  ${m.createdAt}`,
      );
    return { models };
  });
};

function loadModel(p: Project, id: string) {
  const model = p.models.find(id);
  if (!model)
    throw new FewShotError('NOT_FOUND', `No trained model "${id}" in this project (see fewshot trained).`);
  return { model };
}

const classify: Command = async (args, ctx) => {
  const [file, folder] = need(args, 2, 'classify FILE --model ID FOLDER --out CSV') as [string, string];
  const id = stringOption(ctx, 'model');
  const out = stringOption(ctx, 'out');
  if (!id || !out) throw new FewShotError('INVALID_INPUT', '--model and --out are required.');
  return withProject(file, async (p) => {
    const { model } = loadModel(p, id);
    const runner = await loadModelRunner(p, model);
    try {
      const sortInto = stringOption(ctx, 'sort-into');
      const r = await classifyFolder(p, runner, model, folder, {
        outCsv: out,
        ...(sortInto ? { sortInto } : {}),
        link: ctx.options.link === true,
        minConfidence: numberOption(ctx, 'min-confidence', 0.5),
        batchSize: intOption(ctx, 'batch-size', 16),
        onProgress: (pr) => ctx.progress(`classifying: ${pr.processed} files, ${pr.errors} errors`),
      });
      ctx.log(
        `${r.files} files: ${r.ok} classified, ${r.uncertain} uncertain, ${r.errors} errors${r.resumed ? ` (resumed; ${r.alreadyDone} were done)` : ''}; ${r.imagesPerSecond.toFixed(1)} images/s`,
      );
      for (const [c, n] of Object.entries(r.perClass)) ctx.log(`  ${c}: ${n}`);
      ctx.log(`CSV: ${r.csv}`);
      return r;
    } finally {
      await runner.release();
    }
  });
};

export const CLASSIFY_COMMANDS: Record<string, Command> = {
  train,
  evaluate: evaluateCmd,
  curve,
  trained,
  classify,
};
