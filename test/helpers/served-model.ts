// A small real project for the prediction service's tests: a few BCCD crops per class, imported, with a
// linear head on SqueezeNet features (and its cross-validated estimate), plus BCCD files it never saw.

import fs from 'node:fs';
import path from 'node:path';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, SQUEEZENET, tmpDir, useModelDirs } from './env.ts';

export const BCCD_CLASSES = ['Platelets', 'RBC', 'WBC'] as const;

export interface ServedModel {
  file: string;
  modelId: string;
  /** BCCD files of each class that are not in the project. */
  unseen: string[];
}

/** Builds the project and closes it; `perClass` images of each class are imported and trained on. */
export async function servedModel(perClass = 8): Promise<ServedModel> {
  useModelDirs(tmpDir('fsl-user-models-'));
  const root = tmpDir('fsl-serve-data-');
  const unseen: string[] = [];
  for (const cls of BCCD_CLASSES) {
    const files = fs
      .readdirSync(path.join(BCCD, cls))
      .filter((f) => f.endsWith('.jpg'))
      .sort();
    fs.mkdirSync(path.join(root, cls));
    for (const f of files.slice(0, perClass))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(root, cls, f));
    unseen.push(...files.slice(perClass, perClass + 2).map((f) => path.join(BCCD, cls, f)));
  }
  const file = path.join(tmpDir('fsl-serve-'), 'lab.fsl');
  const project = Project.create(file);
  const backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  try {
    await importFolder(project, root);
    const { modelId } = await trainModel(project, backbone, { strategy: 'linear', seed: 1 });
    return { file, modelId, unseen };
  } finally {
    await backbone.release();
    project.close();
  }
}
