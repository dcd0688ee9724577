// Data-set warnings a lab should see before training: missing group information, exact and near
// duplicates (the same picture twice inflates accuracy), duplicates across labels, tiny or skewed classes.

import type { DatasetWarning } from '../../shared/contract.ts';
import type { ProjectDataset } from '../engine/classify/dataset.ts';
import { centreNormalize, dot, mean } from '../engine/classify/linalg.ts';
import type { Project } from '../store/project.ts';

/** Cosine similarity above which two images count as near-duplicates. */
const NEAR_DUPLICATE = 0.985;
/** Pairwise comparison is quadratic: above this many images only the first are compared. */
const MAX_COMPARED = 6000;

export function datasetWarnings(project: Project, data: ProjectDataset): DatasetWarning[] {
  const out: DatasetWarning[] = [];
  if (data.groups === null) {
    out.push({
      kind: 'no-groups',
      message:
        'No group information (patient, slide or source image): if several images come from one source, evaluation will look better than it is. Import a groups CSV.',
      imageIds: [],
    });
  }
  const n = Math.min(data.x.length, MAX_COMPARED);
  if (n > 1) {
    const dim = (data.x[0] as Float32Array).length;
    const centre = mean(data.x.slice(0, n), dim);
    const v = data.x.slice(0, n).map((x) => centreNormalize(x, centre));
    const pairs: [number, number][] = [];
    for (let i = 0; i < n; i++)
      for (let j = i + 1; j < n; j++)
        if (dot(v[i] as Float64Array, v[j] as Float64Array) >= NEAR_DUPLICATE) pairs.push([i, j]);
    const conflicts = pairs.filter(([i, j]) => data.y[i] !== data.y[j]);
    const crossGroup = pairs.filter(
      ([i, j]) => data.y[i] === data.y[j] && data.groups !== null && data.groups[i] !== data.groups[j],
    );
    if (conflicts.length)
      out.push({
        kind: 'label-conflict',
        message: `${conflicts.length} pair(s) of near-identical images carry different labels. Check them: one label is probably wrong.`,
        imageIds: [...new Set(conflicts.flat().map((i) => data.ids[i] as number))],
      });
    if (crossGroup.length)
      out.push({
        kind: 'near-duplicate',
        message: `${crossGroup.length} pair(s) of near-identical images sit in different groups, so a split can put one in training and its twin in testing. Exclude one of each pair or give them one group.`,
        imageIds: [...new Set(crossGroup.flat().map((i) => data.ids[i] as number))],
      });
  }
  const classes = project.images.classes();
  const small = classes.filter((c) => c.images - c.excluded > 0 && c.images - c.excluded < 5);
  if (small.length)
    out.push({
      kind: 'small-class',
      message: `${small.map((c) => `${c.name} (${c.images - c.excluded})`).join(', ')}: fewer than 5 images; figures for these classes will have very wide intervals.`,
      imageIds: [],
    });
  const counts = classes.map((c) => c.images - c.excluded).filter((k) => k > 0);
  if (counts.length > 1 && Math.max(...counts) > 3 * Math.min(...counts))
    out.push({
      kind: 'imbalance',
      message: `Classes are imbalanced (${Math.min(...counts)} to ${Math.max(...counts)} images): read balanced accuracy, not accuracy, and consider the class-balanced loss.`,
      imageIds: [],
    });
  return out;
}
