// One image in, its class probabilities out, for the prediction service. The bytes are untrusted, so they
// are decoded and cropped in the decode processes as batch classification does (a decoder that crashes
// fails that image alone); the tensors of requests that arrive while the runtime is busy go to it
// together as one batch.

import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { HighBitDepth } from '../../../shared/domain.ts';
import type { ModelRunner } from '../model-runner.ts';
import { argmax } from '../classify/linalg.ts';
import { DEFAULT_LIMITS, type DecodeLimits } from '../image/decode.ts';
import type { DecodePool } from '../image/decode-pool.ts';
import { normalizeInto, tensorSize } from '../image/preprocess.ts';
import { ttaViews, type TtaKind, type ViewSpec } from '../../../shared/tta.ts';

export interface Prediction {
  /** The class with the highest probability. */
  predicted: string;
  confidence: number;
  /** In the model's class order. */
  probabilities: number[];
  /** Batch classification's rule: the top probability is below the threshold. */
  uncertain: boolean;
}

interface Waiting {
  tensor: Float32Array;
  /** The embedder's output for this one image (features, or a fine-tuned graph's probabilities). */
  resolve: (v: Float32Array) => void;
  reject: (e: unknown) => void;
}

export interface PredictorOptions {
  /** The most images one runtime call takes (default 16, batch classification's batch). */
  maxBatch?: number;
  limits?: DecodeLimits;
  /** Test-time augmentation: every request is scored over these views (T null: the model's own). */
  tta?: { kind: TtaKind; temperature: number | null };
}

export class Predictor {
  private readonly size: number;
  private readonly maxBatch: number;
  private readonly limits: DecodeLimits;
  private readonly tta: { views: ViewSpec[]; temperature: number | null } | null;
  private readonly waiting: Waiting[] = [];
  private running = false;
  /** Runtime calls and the images they carried (the bench reports the mean batch). */
  batches = 0;
  images = 0;

  constructor(
    private readonly runner: ModelRunner,
    private readonly pool: DecodePool,
    private readonly policy: HighBitDepth,
    options: PredictorOptions = {},
  ) {
    this.size = tensorSize(runner.embedder.spec);
    this.maxBatch = Math.max(1, options.maxBatch ?? 16);
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.tta =
      options.tta && options.tta.kind !== 'none'
        ? { views: ttaViews(options.tta.kind), temperature: options.tta.temperature }
        : null;
  }

  get spec(): PreprocessSpec {
    return this.runner.embedder.spec;
  }

  /** Classifies one file's bytes; a file that is not a usable image rejects with its typed ImageError. */
  async predict(bytes: Uint8Array, threshold: number): Promise<Prediction> {
    const images = this.tta
      ? await this.pool.cropViews(bytes, this.spec, this.limits, this.policy, this.tta.views)
      : [await this.pool.crop(bytes, this.spec, this.limits, this.policy)];
    const vectors = await Promise.all(
      images.map((rgb) => {
        const tensor = new Float32Array(this.size);
        normalizeInto(rgb, this.spec, tensor, 0);
        return new Promise<Float32Array>((resolve, reject) => {
          this.waiting.push({ tensor, resolve, reject });
          void this.drain();
        });
      }),
    );
    const p = this.tta
      ? this.runner.viewProbabilities(vectors, this.tta.temperature)
      : this.runner.probabilities(vectors[0] as Float32Array);
    const k = argmax(p);
    const confidence = p[k] as number;
    return {
      predicted: this.runner.classes[k] as string,
      confidence,
      probabilities: Array.from(p),
      uncertain: confidence < threshold,
    };
  }

  /**
   * Runs whatever is waiting, up to maxBatch at a time, until nothing is. A request that arrives while a
   * batch runs joins the next one: no waiting for a batch to fill, so a lone request is never delayed.
   */
  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiting.length) {
        const group = this.waiting.splice(0, this.maxBatch);
        const n = group.length;
        const input = new Float32Array(n * this.size);
        group.forEach((w, i) => input.set(w.tensor, i * this.size));
        try {
          const out = await this.runner.embedder.embed(input, n);
          const dim = out.length / n;
          this.batches++;
          this.images += n;
          group.forEach((w, i) => w.resolve(out.slice(i * dim, (i + 1) * dim)));
        } catch (e) {
          for (const w of group) w.reject(e);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
