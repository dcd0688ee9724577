// The data set: import, what is in it, relabel and exclude, checks, embeddings export, augmentation
// previews.

import {
  checkImportRequest,
  datasetSummary,
  excludeImages,
  imageIds,
  imagesPage,
  previewAugmentation,
  relabelImages,
} from '../../services/dataset.ts';
import { checkEmbeddingsRequest } from '../../services/embeddings.ts';
import { requireModel } from '../../services/resources.ts';
import type { HandlerMap, HostContext } from './types.ts';

type DatasetChannel =
  | 'dataset.import'
  | 'dataset.summary'
  | 'dataset.images'
  | 'dataset.ids'
  | 'dataset.relabel'
  | 'dataset.exclude'
  | 'dataset.checks'
  | 'dataset.exportEmbeddings'
  | 'dataset.suggest'
  | 'augment.preview';

export function datasetHandlers(ctx: HostContext): HandlerMap<DatasetChannel> {
  return {
    'dataset.import': async (req) => {
      const p = ctx.project();
      checkImportRequest(req);
      return { jobId: ctx.jobs.start(p, 'import', req) };
    },
    'dataset.summary': async () => datasetSummary(ctx.project()),
    'dataset.images': async ({ offset, limit, ...filter }) =>
      imagesPage(ctx.project(), filter, offset, limit),
    'dataset.ids': async (filter) => imageIds(ctx.project(), filter),
    'dataset.relabel': async ({ imageIds, className }) => relabelImages(ctx.project(), imageIds, className),
    'dataset.exclude': async ({ imageIds, excluded }) => excludeImages(ctx.project(), imageIds, excluded),
    'dataset.checks': async (req) => ({ jobId: ctx.jobs.start(ctx.project(), 'checks', req) }),
    'dataset.exportEmbeddings': async (req) => {
      const p = ctx.project();
      checkEmbeddingsRequest(req);
      return { jobId: ctx.jobs.start(p, 'embeddings', req) };
    },
    'dataset.suggest': async (req) => {
      const p = ctx.project();
      requireModel(p, req.modelId);
      return { jobId: ctx.jobs.start(p, 'suggest', req) };
    },
    'augment.preview': async ({ imageId, spec, n, seed }) => {
      const pngs = await previewAugmentation(ctx.project(), imageId, spec, n, seed);
      return { variants: pngs.map((b) => `data:image/png;base64,${b.toString('base64')}`) };
    },
  };
}
