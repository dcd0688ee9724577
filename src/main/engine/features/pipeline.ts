// The embedding pipeline: decodes batch k+1 while ONNX Runtime runs batch k, with two tensors in
// rotation. A file that fails to decode fails alone; the batch goes on without it.

import type { PreprocessSpec } from '../../../shared/backbones.ts';

/** Anything that maps a batch of preprocessed images to one vector each: a backbone, a whole classifier. */
export interface Embedder {
  readonly spec: PreprocessSpec;
  embed(batch: Float32Array, n: number): Promise<Float32Array>;
}
import { evalViews, normalizeInto, preprocessInto, tensorSize } from '../image/preprocess.ts';
import { ttaViews, type TtaKind, type ViewSpec } from '../../../shared/tta.ts';
import { DEFAULT_LIMITS, type DecodeLimits, type RgbImage } from '../image/decode.ts';
import { toErrorData, type ErrorData, FewShotError } from '../../../shared/errors.ts';

export interface PipelineItem<T> {
  item: T;
  load(): Promise<Uint8Array> | Uint8Array;
}

export type Embedded<T> =
  | {
      item: T;
      ok: true;
      /** The centre crop's output. */
      vector: Float32Array;
      /** With test-time augmentation: every view's output, the centre crop first. */
      views?: Float32Array[];
    }
  | { item: T; ok: false; error: ErrorData };

export interface PipelineOptions {
  batchSize?: number;
  limits?: DecodeLimits;
  signal?: AbortSignal;
  /** Decodes and crops elsewhere (a decode process, for untrusted files) instead of in this process. */
  decodeWith?: (bytes: Uint8Array, spec: PreprocessSpec) => Promise<RgbImage>;
  /** Test-time augmentation: each item is embedded in every view of this kind. */
  tta?: TtaKind;
  /** The views decoded elsewhere (a decode process), as decodeWith for one view. */
  decodeViewsWith?: (bytes: Uint8Array, spec: PreprocessSpec, views: ViewSpec[]) => Promise<RgbImage[]>;
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
  const views = ttaViews(options.tta ?? 'none');
  const V = views.length;
  const size = tensorSize(backbone.spec);
  const buffers = [new Float32Array(batchSize * V * size), new Float32Array(batchSize * V * size)];
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
          const scratch = new Float32Array(V * size);
          if (V > 1) {
            const images = options.decodeViewsWith
              ? await options.decodeViewsWith(bytes, backbone.spec, views)
              : await evalViews(bytes, backbone.spec, views, limits);
            images.forEach((img, v) => normalizeInto(img, backbone.spec, scratch, v));
          } else if (options.decodeWith)
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
        tensor.set(r.scratch, out.ok.length * V * size);
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
      const feats = await backbone.embed(cur.tensor, cur.ok.length * V);
      const dim = feats.length / (cur.ok.length * V);
      cur.ok.forEach((item, i) => {
        const at = (v: number) => feats.slice((i * V + v) * dim, (i * V + v + 1) * dim);
        const vector = at(0);
        results.push(
          V > 1
            ? { item, ok: true, vector, views: views.map((_, v) => (v === 0 ? vector : at(v))) }
            : { item, ok: true, vector },
        );
      });
    }
    yield results;
  }
}
