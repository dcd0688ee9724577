// Application state for every screen: the open project, the current screen, the jobs (running ones
// re-attached after a reload or in a new window), and one error handler for the whole UI.

import type {
  Channel,
  Input,
  JobEvent,
  JobKind,
  JobProgress,
  JobResults,
  JobSummary,
  Output,
  ProjectInfo,
} from '../../shared/contract.ts';
import type { EpochPoint, JobStatus } from '../../shared/jobs.ts';
import type { EngineNotice } from '../../shared/engine.ts';
import type { ErrorData, Result } from '../../shared/errors.ts';
import { call, onEngineNotice, onJobEvent } from './api.ts';
import { DEFAULT_AUGMENT, type AugmentSpec } from '../../shared/augment.ts';

export type Screen = 'projects' | 'dataset' | 'augment' | 'train' | 'review' | 'try' | 'batch' | 'report';
const SCREENS: readonly Screen[] = [
  'projects',
  'dataset',
  'augment',
  'train',
  'review',
  'try',
  'batch',
  'report',
];

/** A job as a screen sees it; `result` is the result of its kind. */
export interface JobView<K extends JobKind = JobKind> {
  id: string;
  kind: K;
  status: JobStatus;
  progress: JobProgress | null;
  result: JobResults[K] | null;
  error: ErrorData | null;
  /** Loss values seen so far, for the live chart. */
  losses: number[];
  /** Finished epochs of fine-tuning (each fit its own series), for the per-epoch chart. */
  epochs: EpochPoint[];
  /** Order of arrival, newest last. */
  seq: number;
  /** The model it works on, when known. */
  modelId: string | null;
  /** Its request, when the window re-attached to it (for the screen's form). */
  request: Record<string, unknown> | null;
}

export class AppState {
  project = $state<ProjectInfo | null>(null);
  screen = $state<Screen>(restoredScreen());
  error = $state<ErrorData | null>(null);
  jobs = $state<Record<string, JobView>>({});
  /** Bumped whenever the data set changes, so screens reload. */
  datasetVersion = $state(0);
  /** Bumped when a backbone is added, so every backbone menu reloads. */
  backbonesVersion = $state(0);
  /** The backbone installed last in this window (its row says so after it stops being "missing"). */
  lastAddedBackbone = $state<{ id: string; architecture: string; featureDim: number } | null>(null);
  /** Models deleted in this window, so a screen that still names one stops offering it. */
  deletedModels = $state<string[]>([]);
  /** The model the Review screen shows. */
  reviewModelId = $state<string | null>(null);
  /** The augmentation set on the Augmentation screen: what fine-tuning started from the Train screen uses. */
  augment = $state<AugmentSpec>({ ...DEFAULT_AUGMENT });
  private seq = 0;

  /** The engine stopped (and was restarted, or not): shown as a banner until dismissed. */
  engine = $state<EngineNotice | null>(null);

  constructor() {
    onJobEvent((e) => this.onEvent(e));
    onEngineNotice((n) => this.onEngine(n));
  }

  /** Calls the host; on failure shows the error once, for the whole UI, and returns null. */
  async call<C extends Channel>(channel: C, input: Input<C>): Promise<Output<C> | null> {
    const r = await call(channel, input);
    if (r.ok) {
      // The banner of an earlier failure of this same action goes once the action succeeds.
      if (this.errorFrom === channel) this.clearError();
      return r.value;
    }
    this.handleError(r.error, channel);
    return null;
  }

  /** Calls the host and hands back the result, for a screen that handles a failure itself. */
  callResult<C extends Channel>(channel: C, input: Input<C>): Promise<Result<Output<C>>> {
    return call(channel, input);
  }

  /** What the banner's error came from (a channel, or "job:kind"), so it clears when that succeeds. */
  private errorFrom: string | null = null;

  handleError(e: ErrorData, from: string | null = null): void {
    this.error = e;
    this.errorFrom = from;
  }

  clearError(): void {
    this.error = null;
    this.errorFrom = null;
  }

  go(screen: Screen): void {
    this.screen = screen;
    try {
      sessionStorage.setItem('fewshot.screen', screen);
    } catch {
      // storage refused: the screen is simply not remembered across a reload
    }
  }

  /** Starts following a job the window just started. */
  track(jobId: string, kind: JobKind, modelId: string | null = null): void {
    this.jobs[jobId] ??= this.view(jobId, kind, modelId);
  }

  /** The job `jobId` if it is of `kind` (so its result has that kind's type). */
  jobOf<K extends JobKind>(jobId: string | null | undefined, kind: K): JobView<K> | undefined {
    const j = jobId ? this.jobs[jobId] : undefined;
    return j && j.kind === kind ? (j as JobView<K>) : undefined;
  }

  /** The newest job of a kind this window knows of (started here, or running when it opened). */
  latest<K extends JobKind>(kind: K): JobView<K> | undefined {
    let best: JobView | undefined;
    for (const j of Object.values(this.jobs)) if (j.kind === kind && (!best || j.seq > best.seq)) best = j;
    return best as JobView<K> | undefined;
  }

  running(): JobView[] {
    return Object.values(this.jobs).filter((j) => j.status === 'running' || j.status === 'queued');
  }

  /** Re-attaches to the project's running jobs: their progress (and loss so far) continue here. */
  async syncJobs(): Promise<void> {
    const r = await this.call('jobs.list', {});
    const running = (r?.jobs ?? []).filter((j) => j.status === 'running' || j.status === 'queued');
    for (const j of running.reverse()) this.adopt(j);
  }

  async refreshProject(): Promise<void> {
    this.project = await this.call('project.current', {});
    // The app's own jobs (adding a backbone) are listed with no project open too.
    await this.syncJobs();
    if (!this.project && this.screen !== 'projects') this.screen = 'projects';
  }

  private adopt(j: JobSummary): void {
    const v = (this.jobs[j.id] ??= this.view(j.id, j.kind, j.modelId));
    v.status = j.status;
    if (j.progress) v.progress = j.progress;
    if (j.losses.length > v.losses.length) v.losses = [...j.losses];
    if (j.epochs.length > v.epochs.length) v.epochs = [...j.epochs];
    v.request = j.request;
  }

  private view(id: string, kind: JobKind, modelId: string | null = null): JobView {
    return {
      id,
      kind,
      status: 'running',
      progress: null,
      result: null,
      error: null,
      losses: [],
      epochs: [],
      seq: ++this.seq,
      modelId,
      request: null,
    };
  }

  /** Its running jobs died with the engine; the rows say interrupted, and the project is re-read. */
  private onEngine(n: EngineNotice): void {
    this.engine = n;
    for (const j of this.running()) {
      j.status = 'failed';
      j.error = { code: 'ENGINE_STOPPED', message: n.message };
    }
    if (n.state === 'restarted') void this.refreshProject();
  }

  private onEvent(e: JobEvent): void {
    const job = (this.jobs[e.jobId] ??= this.view(e.jobId, e.kind));
    if (e.type === 'progress') {
      job.status = 'running';
      job.progress = e.progress;
      const m = e.progress.metrics;
      if (m?.loss !== undefined) job.losses.push(m.loss);
      if (m?.epoch !== undefined && m.epochLoss !== undefined) {
        const run = m.run ?? 'final';
        if (!job.epochs.some((p) => p.run === run && p.epoch === m.epoch))
          job.epochs.push({
            run,
            epoch: m.epoch,
            loss: m.epochLoss,
            validationAccuracy: m.validationAccuracy ?? null,
          });
      }
    } else if (e.type === 'done') {
      job.status = 'done';
      job.result = e.result;
      if (this.errorFrom === `job:${e.kind}`) this.clearError();
      if (e.kind === 'import') this.datasetVersion++;
      if (e.kind === 'backbone-add') {
        const b = e.result;
        this.lastAddedBackbone = { id: b.id, architecture: b.architecture, featureDim: b.featureDim };
        this.backbonesVersion++;
      }
    } else if (e.type === 'failed') {
      job.status = 'failed';
      job.error = e.error;
      this.handleError(e.error, `job:${e.kind}`);
    } else job.status = 'cancelled';
  }
}

function restoredScreen(): Screen {
  try {
    const s = sessionStorage.getItem('fewshot.screen');
    return SCREENS.find((x) => x === s) ?? 'projects';
  } catch {
    return 'projects';
  }
}

export const app = new AppState();

/** A proportion as a percentage that never rounds a non-perfect figure up to 100 % (or a non-zero one to 0 %). */
export function pct(x: number, digits = 1): string {
  let d = digits;
  const rounded = (k: number): number => Number((x * 100).toFixed(k));
  while (d < 3 && ((x < 1 && rounded(d) >= 100) || (x > 0 && rounded(d) <= 0))) d++;
  // A no-break space: a figure never wraps away from its unit in a narrow table.
  return `${(x * 100).toFixed(d)}\u00a0%`;
}

export function eta(seconds: number | null): string {
  if (seconds === null) return '';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s left`;
  return `${Math.floor(s / 60)} min ${s % 60} s left`;
}
