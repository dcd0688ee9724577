// Loading what a use case needs and releasing it when it ends, whatever way it ends.

import os from 'node:os';
import { FewShotError } from '../../shared/errors.ts';
import type { ModelRecord } from '../../shared/results.ts';
import { Backbone } from '../engine/backbones/backbone.ts';
import { resolveBackbone } from '../engine/backbones/registry.ts';
import type { Project } from '../store/project.ts';

export async function withBackbone<T>(
  id: string,
  fn: (b: Backbone) => Promise<T>,
  options: { threads?: number; device?: 'auto' | 'cpu' | 'gpu' } = {},
): Promise<T> {
  const b = await Backbone.load(resolveBackbone(id), {
    threads: options.threads ?? Math.max(1, os.availableParallelism()),
    ...(options.device ? { device: options.device } : {}),
  });
  try {
    return await fn(b);
  } finally {
    await b.release();
  }
}

/** A model of the project by its id or a unique prefix of it; NOT_FOUND otherwise. */
export function requireModel(project: Project, idOrPrefix: string): ModelRecord {
  const model = project.models.find(idOrPrefix);
  if (!model)
    throw new FewShotError(
      'NOT_FOUND',
      `No trained model "${idOrPrefix}" in this project (see its trained models).`,
    );
  return model;
}
