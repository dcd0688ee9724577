// Projects, backbones and the app itself.

import { checkBackboneFile } from '../../services/backbone-install.ts';
import { appInfo, installedBackbones } from '../../services/backbones.ts';
import {
  createProject,
  openProject,
  projectInfo,
  recoverIntoNew,
  recoveryOptions,
  restoreFromBackup,
  updateSettings,
} from '../../services/projects.ts';
import { recentProjects } from '../../services/recent.ts';
import type { HandlerMap, HostContext } from './types.ts';

type ProjectChannel =
  | 'app.info'
  | 'project.create'
  | 'project.open'
  | 'project.current'
  | 'project.recent'
  | 'project.settings'
  | 'project.recovery'
  | 'project.recover'
  | 'project.restore'
  | 'models.list'
  | 'models.add';

export function projectHandlers(ctx: HostContext): HandlerMap<ProjectChannel> {
  return {
    'app.info': async () => appInfo(ctx.transport),
    'project.create': async ({ file }) => ctx.setProject(createProject(file)),
    // A damaged file is reported (PROJECT_CORRUPT) before anything reads it; the window then offers
    // its backups or a recovery into a new file.
    'project.open': async ({ file }) => ctx.setProject(openProject(file)),
    'project.current': async () => {
      const p = ctx.current();
      return p ? projectInfo(p) : null;
    },
    'project.recent': async () => ({ files: recentProjects(ctx.dataDir) }),
    'project.settings': async (settings) => updateSettings(ctx.project(), settings),
    'project.recovery': async ({ file }) => recoveryOptions(file),
    'project.recover': async ({ file }) => recoverIntoNew(file),
    'project.restore': async ({ file, backup }) => ctx.setProject(restoreFromBackup(file, backup)),
    'models.list': async () => installedBackbones(),
    // A job of the app: a backbone can be added before any project exists.
    'models.add': async (req) => {
      checkBackboneFile(req);
      return { jobId: ctx.jobs.startForApp('backbone-add', req) };
    },
  };
}
