// A trained network as one ONNX graph (image → probabilities) in a queued ORT session: how fine-tuned
// models classify, in batch classification, evaluation and the export parity check alike.

import type { PreprocessSpec } from '../../../shared/backbones.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { QueuedSession, ort, type SessionOptions } from './session.ts';

export class OnnxClassifier {
  private constructor(
    readonly spec: PreprocessSpec,
    readonly session: QueuedSession,
  ) {}

  static async load(
    onnx: Uint8Array,
    spec: PreprocessSpec,
    options: SessionOptions = {},
  ): Promise<OnnxClassifier> {
    try {
      return new OnnxClassifier(spec, await QueuedSession.create(onnx, options));
    } catch (e) {
      throw new FewShotError('MODEL_INVALID', `ONNX Runtime cannot load the model: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Probabilities for n preprocessed images, row-major (the pipeline's "embedding" of this model). */
  async embed(batch: Float32Array, n: number): Promise<Float32Array> {
    const { height: H, width: W, layout } = this.spec;
    const out = await this.session.run({
      [this.spec.name]: new ort.Tensor(
        'float32',
        batch.subarray(0, n * 3 * H * W),
        layout === 'NCHW' ? [n, 3, H, W] : [n, H, W, 3],
      ),
    });
    const p = out.probabilities;
    if (!p) throw new FewShotError('MODEL_INVALID', 'The model has no "probabilities" output.');
    return p.data as Float32Array;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
