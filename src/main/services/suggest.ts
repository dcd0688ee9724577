// Suggested classes for the unlabelled images, most uncertain first (where a label teaches most).

import type { Request } from '../../shared/requests.ts';
import type { SuggestResult } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import { Backbone } from '../engine/backbones/backbone.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import { loadModelRunner } from '../engine/model-runner.ts';
import { DEFAULT_SUGGESTION_LIMIT, suggestClasses } from '../engine/suggest.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { requireModel } from './resources.ts';

export function suggestLabels(
  project: Project,
  req: Request<'suggest'>,
  ctx: UseCaseContext = {},
): Promise<SuggestResult> {
  const model = requireModel(project, req.modelId);
  return runJob(project, 'suggest', { ...req, modelId: model.id }, ctx, async () => {
    // A head on frozen features reads the project's feature cache, so the backbone is loaded here and lent.
    const lent = isFinetuned(model) ? undefined : await Backbone.load(resolveBackbone(model.backboneId));
    try {
      const runner = await loadModelRunner(project, model, lent);
      try {
        return await suggestClasses(project, runner, model, {
          ...(lent ? { backbone: lent } : {}),
          limit: req.limit ?? DEFAULT_SUGGESTION_LIMIT,
          ...signalOf(ctx),
          onProgress: (p) =>
            ctx.progress?.({
              phase: p.phase,
              done: p.done,
              total: p.total,
              ...(p.failed ? { message: `${p.failed} could not be read` } : {}),
            }),
        });
      } finally {
        await runner.release();
      }
    } finally {
      await lent?.release();
    }
  });
}
