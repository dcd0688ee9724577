// One number for "this exact labelled data set": the model card and report name a model's training data
// by it, and stored evaluations are reused only while the project's data still has the same one.

import crypto from 'node:crypto';
import type { Project } from '../store/project.ts';

/** sha256 over the sorted "image-sha256 label" lines. */
export function datasetFingerprint(items: { sha256: string; class: string }[]): string {
  const lines = items.map((i) => `${i.sha256} ${i.class}`).sort();
  return crypto.createHash('sha256').update(lines.join('\n')).digest('hex');
}

/**
 * What an evaluation of the project's current data depends on: every labelled, included image with its
 * label and group (groups decide the splits), and the 16-bit policy (it decides the pixels).
 */
export function projectFingerprint(project: Project): string {
  const lines = project.images
    .list({ labelledOnly: true })
    .map((i) => `${i.sha256} ${i.className ?? ''} ${i.groupKey ?? ''}`)
    .sort();
  return crypto
    .createHash('sha256')
    .update(`highBitDepth=${project.highBitDepth()}\n`)
    .update(lines.join('\n'))
    .digest('hex');
}
