// Application state for every screen: the open project, the current screen, running jobs, and one error
// handler for the whole UI.

import type {
  Channel,
  Input,
  JobEvent,
  JobKind,
  JobProgress,
  JobResult,
  Output,
  ProjectInfo,
} from '../../shared/contract.ts';
import type { ErrorData, Result } from '../../shared/errors.ts';
import { call, onJobEvent } from './api.ts';

export type Screen = 'projects' | 'dataset' | 'augment' | 'train' | 'review' | 'batch' | 'report';

export interface JobView {
  kind: JobKind;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  progress: JobProgress | null;
  result: JobResult | null;
  error: ErrorData | null;
  /** Loss values seen so far, for the live chart. */
  losses: number[];
}

export class AppState {
  project = $state<ProjectInfo | null>(null);
  screen = $state<Screen>('projects');
  error = $state<ErrorData | null>(null);
  jobs = $state<Record<string, JobView>>({});
  /** Bumped whenever the data set changes, so screens reload. */
  datasetVersion = $state(0);
  /** The model the Review screen shows. */
  reviewModelId = $state<string | null>(null);

  constructor() {
    onJobEvent((e) => this.onEvent(e));
  }

  /** Calls the host; on failure shows the error once, for the whole UI, and returns null. */
  async call<C extends Channel>(channel: C, input: Input<C>): Promise<Output<C> | null> {
    const r = await call(channel, input);
    if (r.ok) return r.value;
    this.handleError(r.error);
    return null;
  }

  /** Calls the host and hands back the result, for a screen that handles a failure itself. */
  callResult<C extends Channel>(channel: C, input: Input<C>): Promise<Result<Output<C>>> {
    return call(channel, input);
  }

  handleError(e: ErrorData): void {
    this.error = e;
  }

  track(jobId: string, kind: JobKind): void {
    this.jobs[jobId] ??= { kind, status: 'running', progress: null, result: null, error: null, losses: [] };
  }

  private onEvent(e: JobEvent): void {
    const job = (this.jobs[e.jobId] ??= {
      kind: e.kind,
      status: 'running',
      progress: null,
      result: null,
      error: null,
      losses: [],
    });
    if (e.type === 'progress') {
      job.progress = e.progress;
      if (e.progress.metrics?.loss !== undefined) job.losses.push(e.progress.metrics.loss);
    } else if (e.type === 'done') {
      job.status = 'done';
      job.result = e.result;
      if (e.kind === 'import') this.datasetVersion++;
    } else if (e.type === 'failed') {
      job.status = 'failed';
      job.error = e.error;
      this.handleError(e.error);
    } else job.status = 'cancelled';
  }

  async refreshProject(): Promise<void> {
    const p = await this.call('project.current', {});
    this.project = p;
  }
}

export const app = new AppState();

export function pct(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)} %`;
}

export function eta(seconds: number | null): string {
  if (seconds === null) return '';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s left`;
}
