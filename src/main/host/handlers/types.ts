// What every handler map is given, and the shape of a map: one async function per channel, taking the
// input its schema parsed and returning the channel's output. Handlers call services and nothing else.

import type { Channel, Output, ParsedInput, ProjectInfo } from '../../../shared/contract.ts';
import type { JobRunner } from '../../services/jobs/job-runner.ts';
import type { Project } from '../../store/project.ts';

export interface HostContext {
  readonly transport: 'electron' | 'websocket';
  readonly dataDir: string;
  readonly jobs: JobRunner;
  /** The open project; NOT_FOUND when none is. */
  project(): Project;
  current(): Project | null;
  /** Makes `p` the open project (refused while a job runs) and remembers it among the recent ones. */
  setProject(p: Project): ProjectInfo;
}

export type Handler<C extends Channel> = (input: ParsedInput<C>) => Promise<Output<C>>;
export type HandlerMap<C extends Channel> = { [K in C]: Handler<K> };
