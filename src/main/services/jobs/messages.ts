// What a job worker and the process that started it say to each other.

import type { JobKind } from '../../../shared/jobs.ts';
import type { ErrorData } from '../../../shared/errors.ts';
import type { ProgressUpdate } from '../context.ts';

export interface WorkerInput {
  /** The project file; the worker opens its own connection. Null for a job of the app (adding a backbone). */
  file: string | null;
  jobId: string;
  kind: JobKind;
  request: unknown;
  /** One Int32: set to 1 to cancel. The worker reads it at every step, even inside synchronous loops. */
  cancel: SharedArrayBuffer;
}

export type FromWorker =
  | { type: 'progress'; progress: ProgressUpdate }
  | { type: 'done'; result: unknown }
  | { type: 'failed'; error: ErrorData }
  | { type: 'cancelled' };

export type ToWorker = { type: 'cancel' };
