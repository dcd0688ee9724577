// What the shell and the engine's process say to each other (Electron's utility-process port, or a
// child process's IPC channel in tests).

import type { JobEvent } from '../../shared/jobs.ts';
import type { Result } from '../../shared/errors.ts';

export type ToEngine =
  | { id: number; channel: string; input: unknown }
  | { id: number; thumbnail: { imageId: number; size: number } }
  /** The app is closing: close the project (removing its write lock) and exit. */
  | { close: true };

export type FromEngine =
  | { id: number; result: Result<unknown> }
  | { id: number; thumbnail: string | null }
  | { event: JobEvent }
  /** The project the engine has open now, so a restarted engine can open it again. */
  | { project: string | null };
