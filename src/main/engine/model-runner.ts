// A trained model ready to classify: a backbone with its head (prototype, linear) or one ONNX graph
// (fine-tuned), behind one interface the batch classifier and the evaluators use.

import { FewShotError } from '../../shared/errors.ts';
import type { ModelRecord } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import type { Project } from '../store/project.ts';
import { Backbone } from './backbones/backbone.ts';
import { resolveBackbone } from './backbones/registry.ts';
import { averageSoftmax } from './classify/calibration.ts';
import { logits, predictProba } from './classify/heads.ts';
import { deserializeHead } from './classify/serialize.ts';
import type { Embedder } from './features/pipeline.ts';
import { OnnxClassifier } from './onnx/onnx-classifier.ts';
import type { SessionOptions } from './onnx/session.ts';

export interface ModelRunner {
  embedder: Embedder;
  classes: string[];
  probabilities(vector: Float32Array): ArrayLike<number>;
  /**
   * Test-time augmentation: the mean over views of softmax(logits / T), with T the temperature fitted
   * for these views (null: the model's own). A fine-tuned graph applies its own temperature inside.
   */
  viewProbabilities(views: Float32Array[], temperature: number | null): ArrayLike<number>;
  release(): Promise<void>;
}

function meanRows(rows: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(rows[0]?.length ?? 0);
  for (const r of rows)
    for (let c = 0; c < out.length; c++) out[c] = (out[c] as number) + (r[c] as number) / rows.length;
  return out;
}

/** Loads what the model needs; a backbone already loaded (and matching) can be lent to it. */
export async function loadModelRunner(
  project: Project,
  model: ModelRecord,
  lent?: Backbone,
  session: SessionOptions = {},
): Promise<ModelRunner> {
  const artefact = project.models.artefact(model.id);
  if (!artefact) throw new FewShotError('MODEL_INVALID', `Model ${model.id} has no stored weights.`);
  const entry = resolveBackbone(model.backboneId);
  if (isFinetuned(model)) {
    const c = await OnnxClassifier.load(artefact, entry.input, session);
    return {
      embedder: c,
      classes: model.classes,
      probabilities: (v) => v,
      viewProbabilities: (views) => meanRows(views),
      release: () => c.release(),
    };
  }
  const head = deserializeHead(artefact);
  const backbone = lent && lent.id === model.backboneId ? lent : await Backbone.load(entry, session);
  if (backbone.sha256 !== model.backboneSha256) {
    if (backbone !== lent) await backbone.release();
    throw new FewShotError(
      'MODEL_INVALID',
      `Backbone ${backbone.id} is not the file this model was trained with (sha256 differs).`,
    );
  }
  return {
    embedder: backbone,
    classes: head.classes,
    probabilities: (v) => predictProba(head, v),
    viewProbabilities: (views, t) =>
      averageSoftmax(
        views.map((v) => logits(head, v)),
        t ?? head.temperature,
      ),
    release: async () => {
      if (backbone !== lent) await backbone.release();
    },
  };
}
