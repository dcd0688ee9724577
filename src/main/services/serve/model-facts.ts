// What `GET /v1/model` says about the served model: the model card's facts as data.

import type { TtaKind } from '../../../shared/tta.ts';
import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { HighBitDepth } from '../../../shared/domain.ts';
import { estimateLabel } from '../../../shared/estimate-labels.ts';
import type { ModelEstimate, ModelRecord } from '../../../shared/results.ts';
import { isFinetuned } from '../../../shared/strategies.ts';
import { deserializeHead } from '../../engine/classify/serialize.ts';
import type { Project } from '../../store/project.ts';

export interface ModelFacts {
  id: string;
  name: string;
  strategy: string;
  finetuned: boolean;
  classes: string[];
  backbone: { id: string; sha256: string };
  /** How well the model is expected to do, with the protocol behind the figure; null when none was stored. */
  estimate: (ModelEstimate & { label: string }) | null;
  /** The softmax temperature fitted on held-out predictions; null for a model stored without one. */
  temperature: number | null;
  created: string;
  seed: number;
  preprocessing: PreprocessSpec & { resizeShorter: number; highBitDepth: HighBitDepth; decode: string };
  /** The default threshold of `uncertain` (a request may pass ?threshold=). */
  uncertainBelow: number;
  /** Test-time augmentation of every prediction (absent: single view). */
  tta?: { kind: TtaKind; temperature: number | null; temperatureFrom: string };
}

function temperatureOf(project: Project, model: ModelRecord): number | null {
  if (typeof model.params.temperature === 'number') return model.params.temperature;
  if (isFinetuned(model)) return null;
  const artefact = project.models.artefact(model.id);
  return artefact ? deserializeHead(artefact).temperature : null;
}

export function modelFacts(
  project: Project,
  model: ModelRecord,
  spec: PreprocessSpec,
  highBitDepth: HighBitDepth,
  uncertainBelow: number,
): ModelFacts {
  return {
    id: model.id,
    name: model.name,
    strategy: model.strategy,
    finetuned: isFinetuned(model),
    classes: model.classes,
    backbone: { id: model.backboneId, sha256: model.backboneSha256 },
    estimate: model.metrics ? { ...model.metrics, label: estimateLabel(model.metrics) } : null,
    temperature: temperatureOf(project, model),
    created: model.createdAt,
    seed: model.seed,
    preprocessing: {
      ...spec,
      // cropGeometry's rule when the manifest names none: 256 for a 224 crop.
      resizeShorter: spec.resizeShorter ?? Math.round((Math.max(spec.height, spec.width) * 256) / 224),
      highBitDepth,
      decode:
        'EXIF orientation applied; first page or frame; alpha composited onto white; greyscale replicated to RGB; CMYK converted to sRGB; shorter side resized (bilinear, antialiased), then centre-cropped',
    },
    uncertainBelow,
  };
}
