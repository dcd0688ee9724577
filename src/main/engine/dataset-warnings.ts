// Data-set warnings a lab should see before training: missing group information, near-duplicate images
// (the same picture twice inflates accuracy; across labels, one label is wrong), tiny or skewed classes.

import { windowed } from './image/windowing.ts';
import type { DatasetWarning } from '../../shared/contract.ts';
import type { ProjectDataset } from './classify/dataset.ts';
import { decoder } from './image/decode.ts';
import type { Project } from '../store/project.ts';

/** Candidate pairs: difference hashes at most this many bits apart. */
const HASH_BITS = 12;
/**
 * Confirmed: mean absolute difference of 32×32 RGB thumbnails at most this (0–255 scale). Re-encoded or
 * rescaled copies of a BCCD crop measured ≤ 2.5; the closest distinct crops 3.8.
 */
const MAX_PIXEL_DIFFERENCE = 3;

export interface ImagePrint {
  hash: bigint;
  thumb: Uint8Array;
}

/**
 * A 64-bit difference hash (9×8 grey, one bit per neighbour comparison) to find candidates fast, and a
 * 32×32 colour thumbnail to confirm them: a hash alone calls any two soft blobs "the same".
 */
export async function imagePrint(bytes: Uint8Array): Promise<ImagePrint> {
  const grey = await decoder(bytes)
    .resize(9, 8, { fit: 'fill', kernel: 'linear' })
    .greyscale()
    .raw()
    .toBuffer();
  let hash = 0n;
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++)
      hash = (hash << 1n) | ((grey[y * 9 + x] as number) > (grey[y * 9 + x + 1] as number) ? 1n : 0n);
  const thumb = await decoder(bytes)
    .resize(32, 32, { fit: 'fill', kernel: 'linear' })
    .removeAlpha()
    .raw()
    .toBuffer();
  return { hash, thumb };
}

export function nearDuplicate(a: ImagePrint, b: ImagePrint): boolean {
  if (popcount(a.hash ^ b.hash) > HASH_BITS || a.thumb.length !== b.thumb.length) return false;
  let d = 0;
  for (let i = 0; i < a.thumb.length; i++) d += Math.abs((a.thumb[i] as number) - (b.thumb[i] as number));
  return d / a.thumb.length <= MAX_PIXEL_DIFFERENCE;
}

function popcount(x: bigint): number {
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}

export async function datasetWarnings(project: Project, data: ProjectDataset): Promise<DatasetWarning[]> {
  const out: DatasetWarning[] = [];
  if (data.groups === null) {
    out.push({
      kind: 'no-groups',
      message:
        'No group information (patient, slide or source image): if several images come from one source, evaluation will look better than it is. Import a groups CSV.',
      imageIds: [],
    });
  }
  const prints: (ImagePrint | null)[] = [];
  for (const img of data.images) {
    const bytes = project.images.bytes(img.sha256);
    prints.push(
      bytes ? await imagePrint(await windowed(bytes, project.highBitDepth())).catch(() => null) : null,
    );
  }
  const pairs: [number, number][] = [];
  for (let i = 0; i < prints.length; i++)
    for (let j = i + 1; j < prints.length; j++) {
      const a = prints[i];
      const b = prints[j];
      if (a && b && nearDuplicate(a, b)) pairs.push([i, j]);
    }
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
  const sameGroupless = data.groups === null ? pairs.filter(([i, j]) => data.y[i] === data.y[j]) : [];
  if (sameGroupless.length)
    out.push({
      kind: 'near-duplicate',
      message: `${sameGroupless.length} pair(s) of near-identical images: a split can put one in training and its twin in testing. Exclude one of each pair.`,
      imageIds: [...new Set(sameGroupless.flat().map((i) => data.ids[i] as number))],
    });
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
