// The main-process side of the contract: validates every input from `unknown`, routes it to the handler
// map of its domain, and returns errors as data. Long work is started as jobs in worker threads, so this
// loop keeps answering while they run. Transport-agnostic: the browser host and Electron's utility
// process both feed it requests and forward its events.

import os from 'node:os';
import path from 'node:path';
import { INPUTS, type Channel, type JobEvent, type ProjectInfo } from '../../shared/contract.ts';
import { FewShotError, toErrorData, type Result } from '../../shared/errors.ts';
import { thumbnail } from '../services/dataset.ts';
import { JobRunner } from '../services/jobs/job-runner.ts';
import { projectInfo } from '../services/projects.ts';
import { rememberProject } from '../services/recent.ts';
import type { Project } from '../store/project.ts';
import { datasetHandlers } from './handlers/dataset.ts';
import { filesHandlers } from './handlers/files.ts';
import { jobsHandlers } from './handlers/jobs.ts';
import { modelHandlers } from './handlers/models.ts';
import { projectHandlers } from './handlers/project.ts';
import type { Handler, HostContext } from './handlers/types.ts';

export interface BackendOptions {
  /** Where recent projects are remembered. */
  dataDir: string;
  transport: 'electron' | 'websocket';
  onEvent: (e: JobEvent) => void;
  /** The open project changed (its file): the desktop shell reopens it in an engine it had to restart. */
  onProject?: (file: string | null) => void;
  /** For tests: another job worker entry, or a shorter grace period before a hard stop. */
  jobWorker?: string;
  cancelGraceMs?: number;
}

/** Fields of the window's inputs that name a file or folder on this machine. */
const PATH_FIELDS = ['file', 'folder', 'groupsCsv', 'out', 'sortInto', 'backup', 'path'] as const;

/** The first path field of an input that is not absolute (the window always sends full paths). */
export function relativePath(input: unknown): string | null {
  if (!input || typeof input !== 'object') return null;
  for (const k of PATH_FIELDS) {
    const v = (input as Record<string, unknown>)[k];
    if (typeof v === 'string' && v.trim() && !path.isAbsolute(v) && !path.win32.isAbsolute(v)) return v;
  }
  return null;
}

export class Backend {
  private project: Project | null = null;
  readonly jobs: JobRunner;
  private readonly handlers: { [C in Channel]: Handler<C> };

  constructor(private readonly options: BackendOptions) {
    this.jobs = new JobRunner({
      emit: options.onEvent,
      ...(options.jobWorker ? { workerScript: options.jobWorker } : {}),
      ...(options.cancelGraceMs !== undefined ? { graceMs: options.cancelGraceMs } : {}),
    });
    const ctx: HostContext = {
      transport: options.transport,
      dataDir: options.dataDir,
      jobs: this.jobs,
      project: () => this.requireProject(),
      current: () => this.project,
      setProject: (p) => this.setProject(p),
    };
    this.handlers = {
      ...projectHandlers(ctx),
      ...datasetHandlers(ctx),
      ...modelHandlers(ctx),
      ...jobsHandlers(ctx),
      ...filesHandlers(),
    };
  }

  /** The one entry point: `input` is untrusted until its schema accepts it. */
  async invoke(channel: string, input: unknown): Promise<Result<unknown>> {
    if (!Object.hasOwn(INPUTS, channel))
      return {
        ok: false,
        error: { code: 'INVALID_INPUT', message: `Unknown channel "${String(channel).slice(0, 100)}".` },
      };
    const c = channel as Channel;
    const parsed = INPUTS[c].safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        ok: false,
        error: {
          code: 'INVALID_INPUT',
          message: `${c}: ${issue ? `${issue.path.join('.') || 'input'}: ${issue.message}` : 'invalid input'}`,
        },
      };
    }
    const relative = relativePath(parsed.data);
    if (relative)
      return {
        ok: false,
        error: {
          code: 'INVALID_INPUT',
          message: `${c}: "${relative.slice(0, 200)}" is not a full path. Choose it with Browse…, or type it from the top (for example /home/lab/cells or C:\\Data\\cells): a partial path would depend on where the app was started.`,
        },
      };
    try {
      const handler = this.handlers[c] as (i: unknown) => Promise<unknown>;
      return { ok: true, value: await handler(parsed.data) };
    } catch (e) {
      if (!(e instanceof FewShotError)) console.error(`${c} failed:`, e);
      return { ok: false, error: toErrorData(e) };
    }
  }

  /** A thumbnail (JPEG, no metadata) of a project image, longest side `size`. */
  thumbnail(imageId: number, size: number): Promise<Buffer> {
    return thumbnail(this.requireProject(), imageId, size);
  }

  async close(): Promise<void> {
    await this.jobs.close();
    this.project?.close();
    this.project = null;
  }

  private setProject(p: Project): ProjectInfo {
    if (this.jobs.active > 0) {
      p.close();
      throw new FewShotError(
        'INVALID_INPUT',
        'A job is running; wait for it or cancel it before switching projects.',
      );
    }
    this.project?.close();
    this.project = p;
    this.options.onProject?.(p.file);
    rememberProject(this.options.dataDir, p.file);
    return projectInfo(p);
  }

  private requireProject(): Project {
    if (!this.project) throw new FewShotError('NOT_FOUND', 'No project is open.');
    return this.project;
  }
}

export function defaultDataDir(): string {
  return process.env.FEWSHOT_DATA_DIR ?? path.join(os.homedir(), '.fewshot-lab');
}
