// The model bundle: export (checked for parity before anything is written) and import back into a
// project, keeping the decoding the model was trained with.

import type { Request } from '../../shared/requests.ts';
import type { ExportSummary } from '../../shared/results.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import { exportModel, importModelBundle } from '../engine/export/bundle.ts';
import type { Project } from '../store/project.ts';
import { runJob, signalOf, type UseCaseContext } from './context.ts';
import { requireModel, withBackbone } from './resources.ts';

export function exportBundle(
  project: Project,
  req: Request<'export'>,
  ctx: UseCaseContext = {},
  options: { parityTolerance?: number } = {},
): Promise<ExportSummary> {
  const model = requireModel(project, req.modelId);
  return runJob(project, 'export', { ...req, modelId: model.id }, ctx, () =>
    withBackbone(model.backboneId, (b) =>
      exportModel(project, model.id, resolveBackbone(model.backboneId), b, req.out, {
        ...signalOf(ctx),
        ...options,
        onProgress: (phase) => ctx.progress?.({ phase, done: 0, total: 1 }),
      }),
    ),
  );
}

export function importBundle(project: Project, dir: string): { modelId: string } {
  return { modelId: importModelBundle(project, dir, resolveBackbone) };
}
