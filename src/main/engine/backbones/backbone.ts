// A loaded backbone: the ONNX graph cut to its pooled features, in a queued ORT session.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { convertTfjsLayers } from './tfjs-import.ts';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { cutAt, dataInputs, findFeatureTensor } from '../onnx/graph.ts';
import { decodeModel, encodeModel, type OnnxModel } from '../onnx/model.ts';
import { QueuedSession, ort, type SessionOptions } from '../onnx/session.ts';
import type { ResolvedBackbone } from './registry.ts';

const hashCache = new Map<string, string>();

/** sha256 of a file, remembered per path, size and modification time. */
export function fileSha256(file: string): string {
  const st = fs.statSync(file);
  const key = `${file}:${st.size}:${st.mtimeMs}`;
  const hit = hashCache.get(key);
  if (hit) return hit;
  const h = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  hashCache.set(key, h);
  return h;
}

/** The backbone's graph reduced to input → pooled features. */
export function featureGraph(model: OnnxModel, outputName?: string): OnnxModel {
  if (outputName) {
    if (
      !model.graph.outputs.some((o) => o.name === outputName) &&
      !model.graph.nodes.some((n) => n.outputs.includes(outputName))
    ) {
      throw new FewShotError('MODEL_INVALID', `The model has no tensor named "${outputName}".`);
    }
    return cutAt(model, outputName);
  }
  return cutAt(model, findFeatureTensor(model));
}

let lastGraph: { key: string; model: OnnxModel } | null = null;

/** The backbone's ONNX graph: read from its file, or converted from a TF.js layers model. */
export function backboneGraph(entry: ResolvedBackbone): OnnxModel {
  try {
    // A fine-tuning run reads the graph several times (the run's plan, each fold, the final fit): the
    // last one read is kept while its file is unchanged. Callers copy, never change, what they get.
    const st = fs.statSync(entry.path);
    const key = `${entry.format}|${entry.path}|${st.size}|${st.mtimeMs}`;
    if (lastGraph?.key === key) return lastGraph.model;
    const model =
      entry.format === 'tfjs-layers'
        ? convertTfjsLayers(entry.path).model
        : decodeModel(fs.readFileSync(entry.path));
    lastGraph = { key, model };
    return model;
  } catch (e) {
    if (e instanceof FewShotError) throw e;
    throw new FewShotError(
      'MODEL_INVALID',
      `Backbone "${entry.id}" is not a readable model: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

export class Backbone {
  private constructor(
    readonly id: string,
    readonly spec: PreprocessSpec,
    readonly dim: number,
    readonly sha256: string,
    readonly session: QueuedSession,
    readonly inputName: string,
    readonly outputName: string,
  ) {}

  static async load(entry: ResolvedBackbone, options: SessionOptions = {}): Promise<Backbone> {
    const sha256 = fileSha256(entry.path);
    const checked = entry.sha256Of ? fileSha256(path.join(path.dirname(entry.path), entry.sha256Of)) : sha256;
    if (entry.sha256 && entry.sha256 !== checked) {
      throw new FewShotError(
        'MODEL_INVALID',
        `Backbone "${entry.id}" does not match its manifest's sha256 (file changed or damaged).`,
      );
    }
    const model = backboneGraph(entry);
    const cut = featureGraph(model, entry.output.name);
    const inputs = dataInputs(cut);
    if (inputs.length !== 1)
      throw new FewShotError('MODEL_INVALID', `Backbone "${entry.id}" must have exactly one image input.`);
    const inputName = (inputs[0] as { name: string }).name;
    const outputName = (cut.graph.outputs[0] as { name: string }).name;
    let session: QueuedSession;
    try {
      session = await QueuedSession.create(encodeModel(cut), options);
    } catch (e) {
      throw new FewShotError(
        'MODEL_INVALID',
        `ONNX Runtime cannot load backbone "${entry.id}": ${(e as Error).message}`,
        { cause: e },
      );
    }
    const b = new Backbone(entry.id, entry.input, entry.output.dim, sha256, session, inputName, outputName);
    const probe = await b.embed(new Float32Array(3 * entry.input.height * entry.input.width), 1);
    if (probe.length !== entry.output.dim) {
      await session.release();
      throw new FewShotError(
        'MODEL_INVALID',
        `Backbone "${entry.id}" gives ${probe.length} features; its manifest says ${entry.output.dim}.`,
      );
    }
    return b;
  }

  /** Runs a batch of n preprocessed images; returns n × dim features, row-major. */
  async embed(batch: Float32Array, n: number): Promise<Float32Array> {
    const { height: H, width: W, layout } = this.spec;
    const dims = layout === 'NCHW' ? [n, 3, H, W] : [n, H, W, 3];
    const input = new ort.Tensor('float32', batch.subarray(0, n * 3 * H * W), dims);
    const out = await this.session.run({ [this.inputName]: input });
    const t = out[this.outputName];
    if (!t) throw new FewShotError('INTERNAL', `Backbone "${this.id}" returned no "${this.outputName}".`);
    const data = t.data as Float32Array;
    if (data.length % n !== 0)
      throw new FewShotError('INTERNAL', 'Backbone output does not split into the batch.');
    return data;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
