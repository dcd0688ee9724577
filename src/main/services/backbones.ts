// The installed backbones: listing them (with the missing ones and how to add them) and adding one.

import type { BackboneEntry, BackboneInfo } from '../../shared/backbones.ts';
import { addOnnxBackbone, type AddOptions } from '../engine/backbones/install.ts';
import { listBackbones, userModelsDir } from '../engine/backbones/registry.ts';
import { softwareVersions } from '../engine/versions.ts';

export function installedBackbones(): {
  models: BackboneInfo[];
  problems: { dir: string; message: string }[];
} {
  const problems: { dir: string; message: string }[] = [];
  return { models: listBackbones(problems), problems };
}

export { userModelsDir };

/**
 * Validates a backbone — an ONNX file, a torchvision ResNet state dict (.pth) or a TF.js layers
 * model.json — converts it to ONNX where needed, and installs it in the user's models folder.
 */
export function addBackbone(file: string, options: Omit<AddOptions, 'dir'> = {}): Promise<BackboneEntry> {
  return addOnnxBackbone(file, { dir: userModelsDir(), ...options });
}

export function appInfo(transport: 'electron' | 'websocket'): {
  version: string;
  platform: string;
  userModelsDir: string;
  transport: 'electron' | 'websocket';
} {
  return {
    version: softwareVersions().app ?? '0',
    platform: `${process.platform}-${process.arch}`,
    userModelsDir: userModelsDir(),
    transport,
  };
}
