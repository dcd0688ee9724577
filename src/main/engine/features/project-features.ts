// Features for a project's images: read from the cache when present, computed and stored otherwise.

import type { FeatureSummary } from '../../../shared/domain.ts';
import type { ErrorData } from '../../../shared/errors.ts';
import type { Project } from '../../store/project.ts';
import type { ImageRecord } from '../../store/images-repo.ts';
import type { Backbone } from '../backbones/backbone.ts';
import { embedAll, type PipelineItem } from './pipeline.ts';
import { windowed } from '../image/windowing.ts';

export interface FeatureProgress {
  done: number;
  total: number;
  fromCache: number;
  failed: number;
}

export interface FeatureOptions {
  images?: ImageRecord[];
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (p: FeatureProgress) => void;
}

export interface FeatureRunResult extends FeatureSummary {
  errors: { imageId: number; error: ErrorData }[];
}

export async function computeFeatures(
  project: Project,
  backbone: Backbone,
  options: FeatureOptions = {},
): Promise<FeatureRunResult> {
  const started = performance.now();
  const images = options.images ?? project.images.list({ includeExcluded: false });
  // One vector per distinct content: two records never share a sha256, but be safe.
  const view = project.featureView();
  const policy = project.highBitDepth();
  const todo = images.filter((img) => !project.features.has(img.sha256, backbone.id, view));
  const fromCache = images.length - todo.length;
  let done = fromCache;
  let failed = 0;
  const errors: FeatureRunResult['errors'] = [];
  options.onProgress?.({ done, total: images.length, fromCache, failed });

  function* items(): Generator<PipelineItem<ImageRecord>> {
    for (const img of todo) {
      yield {
        item: img,
        load: () => {
          const b = project.images.bytes(img.sha256);
          if (!b) throw new Error(`image ${img.id} has no stored bytes`);
          return windowed(b, policy);
        },
      };
    }
  }

  for await (const batch of embedAll(backbone, items(), {
    batchSize: options.batchSize ?? 16,
    ...(options.signal ? { signal: options.signal } : {}),
  })) {
    const ok: { sha256: string; vector: Float32Array }[] = [];
    for (const r of batch) {
      if (r.ok) ok.push({ sha256: r.item.sha256, vector: r.vector });
      else {
        failed++;
        errors.push({ imageId: r.item.id, error: r.error });
      }
    }
    project.features.putMany(ok, backbone.id, view);
    done += batch.length;
    options.onProgress?.({ done, total: images.length, fromCache, failed });
  }
  const seconds = (performance.now() - started) / 1000;
  const computed = todo.length - failed;
  return {
    backbone: backbone.id,
    images: images.length,
    computed,
    fromCache,
    failed,
    seconds,
    imagesPerSecond: computed > 0 ? computed / seconds : 0,
    errors,
  };
}
