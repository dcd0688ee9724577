// The embedding pipeline: decodes batch k+1 while ONNX Runtime runs batch k, with two tensors in
// rotation. A file that fails to decode fails alone; the batch goes on without it.

import type { PreprocessSpec } from '../../../shared/backbones.ts';

/** Anything that maps a batch of preprocessed images to one vector each: a backbone, a whole classifier. */
export interface Embedder {
  readonly spec: PreprocessSpec;
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
}
import { normalizeInto, preprocessInto, tensorSize } from '../image/preprocess.ts';
import { DEFAULT_LIMITS, type DecodeLimits, type RgbImage } from '../image/decode.ts';
import { toErrorData, type ErrorData, FewShotError } from '../../../shared/errors.ts';

export interface PipelineItem<T> {
  item: T;
  load(): Promise<Uint8Array> | Uint8Array;
}

export type Embedded<T> =
  { item: T; ok: true; vector: Float32Array } | { item: T; ok: false; error: ErrorData };

export interface PipelineOptions {
  batchSize?: number;
  limits?: DecodeLimits;
  signal?: AbortSignal;
  /** Decodes and crops elsewhere (a decode process, for untrusted files) instead of in this process. */
  decodeWith?: (bytes: Uint8Array, spec: PreprocessSpec) => Promise<RgbImage>;
}

interface Decoded<T> {
  tensor: Float32Array;
  ok: T[];
  failed: { item: T; error: ErrorData }[];
}

/** Yields, batch by batch and in input order within each batch's successes, every item's features or error. */
export async function* embedAll<T>(
  backbone: Embedder,
  source: Iterable<PipelineItem<T>> | AsyncIterable<PipelineItem<T>>,
  options: PipelineOptions = {},
): AsyncGenerator<Embedded<T>[]> {
  const batchSize = options.batchSize ?? 16;
  const limits = options.limits ?? DEFAULT_LIMITS;
  const size = tensorSize(backbone.spec);
  const buffers = [new Float32Array(batchSize * size), new Float32Array(batchSize * size)];
  const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let turn = 0;
  let exhausted = false;

  async function nextBatch(): Promise<PipelineItem<T>[]> {
    const batch: PipelineItem<T>[] = [];
    while (batch.length < batchSize && !exhausted) {
      const r = await it.next();
      if (r.done) exhausted = true;
      else batch.push(r.value);
    }
    return batch;
  }

  async function decode(batch: PipelineItem<T>[], tensor: Float32Array): Promise<Decoded<T>> {
    const results = await Promise.all(
      batch.map(async (p) => {
        try {
          const bytes = await p.load();
          const scratch = new Float32Array(size);
          if (options.decodeWith)
            normalizeInto(await options.decodeWith(bytes, backbone.spec), backbone.spec, scratch, 0);
          else await preprocessInto(bytes, backbone.spec, scratch, 0, limits);
          return { p, scratch, error: null };
        } catch (e) {
          return { p, scratch: null, error: toErrorData(e) };
        }
      }),
    );
    const out: Decoded<T> = { tensor, ok: [], failed: [] };
    for (const r of results) {
      if (r.scratch) {
        tensor.set(r.scratch, out.ok.length * size);
        out.ok.push(r.p.item);
      } else out.failed.push({ item: r.p.item, error: r.error ?? { code: 'INTERNAL', message: 'unknown' } });
    }
    return out;
  }

  const first = await nextBatch();
  let pending: Promise<Decoded<T>> | null = first.length
    ? decode(first, buffers[turn++ % 2] as Float32Array)
    : null;
  while (pending) {
    const cur: Decoded<T> = await pending;
    if (options.signal?.aborted) throw new FewShotError('CANCELLED', 'Cancelled.');
    const following = await nextBatch();
    pending = following.length ? decode(following, buffers[turn++ % 2] as Float32Array) : null;
    const results: Embedded<T>[] = cur.failed.map((f) => ({
      item: f.item,
      ok: false as const,
      error: f.error,
    }));
    if (cur.ok.length) {
      const feats = await backbone.embed(cur.tensor, cur.ok.length);
      const dim = feats.length / cur.ok.length;
      cur.ok.forEach((item, i) =>
        results.push({ item, ok: true, vector: feats.slice(i * dim, (i + 1) * dim) }),
      );
    }
    yield results;
  }
}
