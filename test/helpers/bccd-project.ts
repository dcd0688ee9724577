// One imported BCCD project with SqueezeNet features, built once per test file.

import path from 'node:path';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { loadDataset, type ProjectDataset } from '../../src/main/engine/classify/dataset.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, SQUEEZENET, tmpDir, useModelDirs } from './env.ts';

export interface BccdFixture {
  project: Project;
  backbone: Backbone;
  data: ProjectDataset;
  file: string;
  close(): Promise<void>;
}

export async function bccdFixture(): Promise<BccdFixture> {
  useModelDirs(tmpDir('fsl-user-models-'));
  const file = path.join(tmpDir(), 'bccd.fsl');
  const project = Project.create(file);
  await importFolder(project, BCCD, { groupsCsv: path.join(BCCD, 'groups.csv') });
  const backbone = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  const data = await loadDataset(project, backbone);
  return {
    project,
    backbone,
    data,
    file,
    close: async () => {
      await backbone.release();
      project.close();
    },
  };
}
