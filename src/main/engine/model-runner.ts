// A trained model ready to classify: a backbone with its head (prototype, linear) or one ONNX graph
// (fine-tuned), behind one interface the batch classifier and the evaluators use.

import { FewShotError } from '../../shared/errors.ts';
import type { ModelRecord } from '../../shared/results.ts';
import { isFinetuned } from '../../shared/strategies.ts';
import type { Project } from '../store/project.ts';
import { Backbone } from './backbones/backbone.ts';
import { resolveBackbone } from './backbones/registry.ts';
import { predictProba } from './classify/heads.ts';
import { deserializeHead } from './classify/serialize.ts';
import type { Embedder } from './features/pipeline.ts';
import { OnnxClassifier } from './onnx/onnx-classifier.ts';
import type { SessionOptions } from './onnx/session.ts';

export interface ModelRunner {
  embedder: Embedder;
  classes: string[];
  probabilities(vector: Float32Array): ArrayLike<number>;
  release(): Promise<void>;
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
    return { embedder: c, classes: model.classes, probabilities: (v) => v, release: () => c.release() };
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
    release: async () => {
      if (backbone !== lent) await backbone.release();
    },
  };
}
