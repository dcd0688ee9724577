// Heads as JSON artefacts: float arrays as base64 float32, so a stored model reloads bit for bit.

import { z } from 'zod';
import { FewShotError } from '../../../shared/errors.ts';
import type { Head } from './heads.ts';
import { fromBase64, toBase64 } from './linalg.ts';

const HeadJson = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('prototype'),
    format: z.literal(1),
    classes: z.array(z.string()),
    centre: z.string(),
    prototypes: z.array(z.string()),
    temperature: z.number(),
  }),
  z.object({
    kind: z.literal('linear'),
    format: z.literal(1),
    classes: z.array(z.string()),
    centre: z.string(),
    weights: z.string(),
    bias: z.string(),
    weightDecay: z.number(),
    classBalanced: z.boolean(),
    temperature: z.number(),
  }),
]);

/** Float32 storage, then read back: the head used after training is exactly the stored one. */
export function serializeHead(head: Head): Buffer {
  const json =
    head.kind === 'prototype'
      ? {
          kind: head.kind,
          format: 1,
          classes: head.classes,
          centre: toBase64(head.centre),
          prototypes: head.prototypes.map(toBase64),
          temperature: head.temperature,
        }
      : {
          kind: head.kind,
          format: 1,
          classes: head.classes,
          centre: toBase64(head.centre),
          weights: toBase64(head.weights),
          bias: toBase64(head.bias),
          weightDecay: head.weightDecay,
          classBalanced: head.classBalanced,
          temperature: head.temperature,
        };
  return Buffer.from(JSON.stringify(json));
}

export function deserializeHead(buf: Buffer): Head {
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new FewShotError('MODEL_INVALID', 'The stored model is not readable.');
  }
  const parsed = HeadJson.safeParse(raw);
  if (!parsed.success)
    throw new FewShotError(
      'MODEL_INVALID',
      `The stored model is not a head this app reads: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  const h = parsed.data;
  const f64 = (s: string) => Float64Array.from(fromBase64(s));
  if (h.kind === 'prototype')
    return {
      kind: 'prototype',
      classes: h.classes,
      centre: f64(h.centre),
      prototypes: h.prototypes.map(f64),
      temperature: h.temperature,
    };
  return {
    kind: 'linear',
    classes: h.classes,
    centre: f64(h.centre),
    weights: f64(h.weights),
    bias: f64(h.bias),
    weightDecay: h.weightDecay,
    classBalanced: h.classBalanced,
    temperature: h.temperature,
  };
}
