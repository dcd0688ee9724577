// What every screen says and asks about backbones: the sentence for a first run with none, the file
// dialog for adding one, and which listed backbones can run.

import type { BackboneInfo } from '../../shared/backbones.ts';
import type { PickRequest } from '../../shared/files.ts';

export const NO_BACKBONE =
  "No backbone is installed yet. Add one to start training: torchvision's resnet18-f37072fd.pth, an .onnx file, or a TF.js model.json.";

export const BACKBONE_PICK: PickRequest = {
  kind: 'file',
  title: 'Add a backbone',
  extensions: ['.pth', '.pt', '.onnx', '.json'],
  filterName: 'Backbones (.pth, .onnx, model.json)',
};

/** Installed backbones of a format this build runs. */
export function usable(models: BackboneInfo[]): BackboneInfo[] {
  return models.filter((m) => m.present && m.supported);
}

export function fileName(p: string): string {
  return p.split(/[\\/]/).filter(Boolean).at(-1) ?? p;
}
