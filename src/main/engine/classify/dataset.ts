// The labelled, included images of a project as feature vectors (computed or read from the cache).

import { FewShotError } from '../../../shared/errors.ts';
import type { Project } from '../../store/project.ts';
import type { ImageRecord } from '../../store/images-repo.ts';
import type { Backbone } from '../backbones/backbone.ts';
import { computeFeatures, type FeatureOptions } from '../features/project-features.ts';
import type { Vec } from './linalg.ts';

/** Feature vectors with their labels and groups: what every head and evaluation works on. */
export interface Dataset {
  x: Vec[];
  y: number[];
  classes: string[];
  groups: (string | null)[] | null;
  /** Image ids, to show misclassified images. */
  ids?: number[];
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
