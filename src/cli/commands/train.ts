// `fewshot train | evaluate | curve | trained`.

import { ttaLabel } from '../../shared/tta.ts';
import { FewShotError } from '../../shared/errors.ts';
import { calibrationLabel, estimateLabel, protocolLabel } from '../../shared/estimate-labels.ts';
import type { Estimate, EvaluationResult } from '../../shared/results.ts';
import { isFinetuned, isTrainStrategy } from '../../shared/strategies.ts';
import { curve, evaluateStrategy } from '../../main/services/evaluation.ts';
import { withProject } from '../../main/services/projects.ts';
import { train, trainedModels } from '../../main/services/training.ts';
import type { CliContext, Command } from '../context.ts';
import {
  defined,
  finetuneSettings,
  intOption,
  need,
  optionalNumber,
  protocolOption,
  request,
  requiredOption,
  REQUESTS,
  stringOption,
  ttaOption,
} from '../options.ts';

export function fmt(e: Estimate): string {
  return `${(e.mean * 100).toFixed(1)} % [${(e.ci95[0] * 100).toFixed(1)}, ${(e.ci95[1] * 100).toFixed(1)}]`;
}

function strategyOption(ctx: CliContext, frozenOnly = false) {
  const s = stringOption(ctx, 'strategy') ?? '';
  if (!isTrainStrategy(s) || (frozenOnly && isFinetuned(s)))
    throw new FewShotError(
      'INVALID_INPUT',
      frozenOnly
        ? '--strategy must be prototype or linear.'
        : '--strategy must be prototype, linear, last-stage, last-two-stages or full.',
    );
  return s;
}

const backboneOption = (ctx: CliContext): string =>
  requiredOption(ctx, 'backbone', 'see fewshot models list');

const trainCmd: Command = async (args, ctx) => {
  const [file] = need(
    args,
    1,
    'train FILE --backbone ID --strategy prototype|linear|last-stage|last-two-stages|full [--seed N]',
  ) as [string];
  const strategy = strategyOption(ctx);
  const common = {
    backbone: backboneOption(ctx),
    seed: intOption(ctx, 'seed', 0, true),
    name: stringOption(ctx, 'name'),
  };
  const req = request(
    REQUESTS.train,
    defined(
      isFinetuned(strategy)
        ? { strategy, ...common, ...finetuneSettings(ctx) }
        : {
            strategy,
            ...common,
            classBalanced: ctx.options['class-balanced'] ? true : undefined,
            weightDecay: optionalNumber(ctx, 'weight-decay'),
          },
    ),
  );
  return withProject(file, async (p) => {
    const r = await train(p, req, ctx.run);
    ctx.log(
      `Trained model ${r.modelId} (${r.strategy} on ${r.backbone}, ${r.images} images, ${r.classes.length} classes) in ${r.seconds.toFixed(1)} s${isFinetuned(r.strategy) ? ` on ${String(r.params.device ?? r.params.backend)} (${String(r.params.backend)})` : ''}`,
    );
    if (r.estimate) {
      ctx.log(
        `Estimated accuracy (${estimateLabel(r.estimate)}): ${fmt(r.estimate.accuracy)}; balanced ${fmt(r.estimate.balancedAccuracy)}; macro-F1 ${fmt(r.estimate.macroF1)}`,
      );
      if (r.estimate.calibration) ctx.log(`Calibration: ${calibrationLabel(r.estimate.calibration)}`);
    }
    return r;
  });
};

function printEvaluation(ctx: CliContext, r: EvaluationResult, backbone: string): void {
  const { protocol } = r;
  ctx.log(
    `${r.strategy} on ${backbone} · ${protocolLabel(protocol, r.testPredictions)}${r.shots !== null ? ` · ${r.ways}-way, ${r.episodes} episodes run` : ''}${r.folds !== null && !(protocol.kind === 'kfold' && protocol.folds === r.folds) ? ` · ${r.folds} folds` : ''} · groups ${r.groupAware ? 'kept whole' : 'ignored'}`,
  );
  ctx.log(`accuracy          ${fmt(r.accuracy)} (${r.accuracy.method})`);
  ctx.log(`balanced accuracy ${fmt(r.balancedAccuracy)}`);
  ctx.log(`macro-F1          ${fmt(r.macroF1)}`);
  if (r.rocAucOvr) ctx.log(`ROC AUC (OvR)     ${fmt(r.rocAucOvr)}`);
  if (r.calibration) ctx.log(`calibration       ${calibrationLabel(r.calibration)}`);
  if (r.tta)
    ctx.log(
      `views             ${ttaLabel(r.tta.kind)}; T = ${r.tta.temperature.toFixed(3)} from held-out views`,
    );
  for (const c of r.perClass)
    ctx.log(
      `  ${c.class.padEnd(16)} P ${fmt(c.precision)}  R ${fmt(c.recall)}  F1 ${fmt(c.f1)}  n=${c.support}`,
    );
}

const evaluateCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'evaluate FILE --backbone ID --strategy S [protocol]') as [string];
  const strategy = strategyOption(ctx);
  const req = request(
    REQUESTS.evaluate,
    defined({
      backbone: backboneOption(ctx),
      strategy,
      protocol: protocolOption(ctx),
      seed: intOption(ctx, 'seed', 0, true),
      groupAware: !ctx.options['no-groups'],
      finetune: isFinetuned(strategy) ? finetuneSettings(ctx) : undefined,
      tta: ttaOption(ctx),
    }),
  );
  return withProject(file, async (p) => {
    const r = await evaluateStrategy(p, req, ctx.run);
    printEvaluation(ctx, r, req.backbone);
    const { predictions: _omit, ...rest } = r;
    return { ...rest, predictions: r.predictions.length };
  });
};

const curveCmd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'curve FILE --backbone ID --strategy S') as [string];
  const req = request(REQUESTS.curve, {
    backbone: backboneOption(ctx),
    strategy: strategyOption(ctx, true),
    seed: intOption(ctx, 'seed', 0, true),
    episodes: intOption(ctx, 'episodes', 50),
    groupAware: !ctx.options['no-groups'],
  });
  return withProject(file, async (p) => {
    const r = await curve(p, req, ctx.run);
    for (const pt of r.points)
      ctx.log(
        `${String(pt.shots).padStart(3)} shots: accuracy ${fmt(pt.accuracy)}  macro-F1 ${fmt(pt.macroF1)}`,
      );
    return r;
  });
};

const trained: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'trained FILE') as [string];
  // Only reads: works while the app or another command has the project open.
  return withProject(
    file,
    async (p) => {
      const r = trainedModels(p);
      for (const m of r.models)
        ctx.log(
          `${m.id.slice(0, 8)}  ${m.strategy.padEnd(10)} ${m.backboneId.padEnd(26)} ${m.classes.length} classes  ${m.trainingSet.length} images  ${m.createdAt}`,
        );
      return r;
    },
    { readonly: true },
  );
};

export const TRAIN_COMMANDS: Record<string, Command> = {
  train: trainCmd,
  evaluate: evaluateCmd,
  curve: curveCmd,
  trained,
};
