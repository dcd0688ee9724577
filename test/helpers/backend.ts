// A backend as the window sees it (the contract, job events), with a way to wait for a job's end.

import { Backend } from '../../src/main/host/backend.ts';
import type { JobEvent } from '../../src/shared/contract.ts';
import type { Result } from '../../src/shared/errors.ts';
import { tmpDir } from './env.ts';

export interface TestBackend {
  backend: Backend;
  events: JobEvent[];
  /** Calls a channel and returns its value, failing the test on an error result. */
  call<T = unknown>(channel: string, input: unknown): Promise<T>;
  invoke(channel: string, input: unknown): Promise<Result<unknown>>;
  /** The job's terminal event (done, failed or cancelled). */
  ended(jobId: string): Promise<JobEvent>;
  /** Resolves at the first event for which `pred` holds. */
  when(pred: (e: JobEvent) => boolean): Promise<JobEvent>;
  close(): Promise<void>;
}

export function testBackend(options: { cancelGraceMs?: number } = {}): TestBackend {
  const events: JobEvent[] = [];
  const waiters: { pred: (e: JobEvent) => boolean; resolve: (e: JobEvent) => void }[] = [];
  const backend = new Backend({
    dataDir: tmpDir('fsl-backend-data-'),
    transport: 'websocket',
    ...options,
    onEvent: (e) => {
      events.push(e);
      for (const w of [...waiters])
        if (w.pred(e)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(e);
        }
    },
  });
  const when = (pred: (e: JobEvent) => boolean): Promise<JobEvent> => {
    const seen = events.find(pred);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  return {
    backend,
    events,
    invoke: (channel, input) => backend.invoke(channel, input),
    async call<T>(channel: string, input: unknown): Promise<T> {
      const r = await backend.invoke(channel, input);
      if (!r.ok) throw new Error(`${channel}: ${r.error.code}: ${r.error.message}`);
      return r.value as T;
    },
    ended: (jobId) => when((e) => e.jobId === jobId && e.type !== 'progress'),
    when,
    close: () => backend.close(),
  };
}
