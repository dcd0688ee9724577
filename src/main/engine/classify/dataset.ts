// The labelled, included images of a project as feature vectors (computed or read from the cache).

import { FewShotError } from '../../../shared/errors.ts';
import type { Project } from '../../store/project.ts';
import type { ImageRecord } from '../../store/images-repo.ts';
import type { Backbone } from '../backbones/backbone.ts';
import { computeFeatures, type FeatureOptions } from '../features/project-features.ts';
import type { Vec } from './linalg.ts';
import { ttaViews, type TtaKind, type ViewSpec } from '../../../shared/tta.ts';
import { embedAll } from '../features/pipeline.ts';
import { windowed } from '../image/windowing.ts';

/** Feature vectors with their labels and groups: what every head and evaluation works on. */
export interface Dataset {
  x: Vec[];
  y: number[];
  classes: string[];
  groups: (string | null)[] | null;
  /** Image ids, to show misclassified images. */
  ids?: number[];
  /** Test-time augmentation: every view's features per image (the first is x[i]). */
  views?: Vec[][];
}

export interface ProjectDataset extends Dataset {
  ids: number[];
  images: ImageRecord[];
}

export async function loadDataset(
  project: Project,
  backbone: Backbone,
  options: Pick<FeatureOptions, 'signal' | 'onProgress'> = {},
): Promise<ProjectDataset> {
  const images = project.images.list({ labelledOnly: true });
  await computeFeatures(project, backbone, { images, ...options });
  const classes = [...new Set(images.map((i) => i.className as string))].sort();
  const index = new Map(classes.map((c, i) => [c, i]));
  const kept: ImageRecord[] = [];
  const x: Float32Array[] = [];
  const view = project.featureView();
  for (const img of images) {
    const v = project.features.get(img.sha256, backbone.id, view);
    if (!v) continue; // failed to decode: reported by computeFeatures, left out here
    kept.push(img);
    x.push(v);
  }
  if (classes.length < 2)
    throw new FewShotError('INVALID_INPUT', 'The project needs labelled images in at least two classes.');
  const anyGroup = kept.some((i) => i.groupKey !== null);
  return {
    x,
    y: kept.map((i) => index.get(i.className as string) as number),
    classes,
    groups: anyGroup ? kept.map((i) => i.groupKey) : null,
    ids: kept.map((i) => i.id),
    images: kept,
  };
}

/** The feature-cache view key of one test-time augmentation view (view 0, the centre crop, is `base`). */
export function viewKey(base: string, view: ViewSpec): string {
  return view.crop === 'centre' && !view.flip ? base : `${base}|${view.crop}${view.flip ? '+flip' : ''}`;
}

/**
 * Adds every test-time-augmentation view's features to a dataset (computed once, then cached per view).
 * An image whose views cannot be computed keeps its centre view only (it is decodable: it has features).
 */
export async function withViews<D extends ProjectDataset>(
  project: Project,
  backbone: Backbone,
  data: D,
  kind: TtaKind,
  options: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<D> {
  const views = ttaViews(kind);
  if (views.length === 1) return data;
  const base = project.featureView();
  const keys = views.map((v) => viewKey(base, v));
  const policy = project.highBitDepth();
  const todo = data.images.filter((img) =>
    keys.some((k) => !project.features.has(img.sha256, backbone.id, k)),
  );
  let done = data.images.length - todo.length;
  options.onProgress?.(done, data.images.length);
  const items = todo.map((img) => ({
    item: img,
    load: () => windowed(project.images.bytes(img.sha256) ?? Buffer.alloc(0), policy),
  }));
  for await (const batch of embedAll(backbone, items, {
    batchSize: 8,
    tta: kind,
    ...(options.signal ? { signal: options.signal } : {}),
  })) {
    project.db.transaction(() => {
      for (const r of batch)
        if (r.ok && r.views)
          r.views.forEach((v, k) => {
            if (k > 0) project.features.put(r.item.sha256, backbone.id, v, keys[k]);
          });
    })();
    done += batch.length;
    options.onProgress?.(done, data.images.length);
  }
  const all = data.images.map((img, i) =>
    keys.map((k, v) => (v === 0 ? (data.x[i] as Vec) : project.features.get(img.sha256, backbone.id, k))),
  );
  return { ...data, views: all.map((vs, i) => (vs.every(Boolean) ? (vs as Vec[]) : [data.x[i] as Vec])) };
}
