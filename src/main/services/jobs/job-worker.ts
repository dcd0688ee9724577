// A job's worker thread: opens the project on its own connection, runs one use case from the job table,
// streams its progress, and ends with one message. The loop that answers the window's requests never
// runs this work, so a thumbnail or a Cancel is answered while it trains.

import { parentPort, workerData } from 'node:worker_threads';
import { REQUESTS } from '../../../shared/requests.ts';
import { toErrorData } from '../../../shared/errors.ts';
import { Project } from '../../store/project.ts';
import type { ProgressUpdate } from '../context.ts';
import type { FromWorker, ToWorker, WorkerInput } from './messages.ts';
import { runJobKind } from './table.ts';

const input = workerData as WorkerInput;
const port = parentPort;
if (!port) throw new Error('job-worker runs as a worker thread');
const post = (m: FromWorker): void => port.postMessage(m);

/**
 * A signal whose `aborted` also reads the shared cancel flag: a cancel is seen at the next check even
 * while a synchronous loop (a cross-validation, a fit) keeps this thread's event loop from turning.
 */
function cancellableSignal(flag: Int32Array): { signal: AbortSignal; check: () => void } {
  const controller = new AbortController();
  const signal = controller.signal;
  // The prototype's own getter, read off its descriptor and always called with a signal as `this`.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const base = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')?.get as
    ((this: AbortSignal) => boolean) | undefined;
  if (!base) throw new Error('AbortSignal.prototype.aborted is not a getter');
  const check = (): void => {
    if (Atomics.load(flag, 0) === 1 && !base.call(signal)) controller.abort();
  };
  Object.defineProperty(signal, 'aborted', {
    get(this: AbortSignal) {
      check();
      return base.call(this);
    },
  });
  port?.on('message', (m: ToWorker) => {
    if (m.type === 'cancel') controller.abort();
  });
  return { signal, check };
}

async function main(): Promise<void> {
  const { signal, check } = cancellableSignal(new Int32Array(input.cancel));
  let last = 0;
  let lastPhase = '';
  const progress = (p: ProgressUpdate): void => {
    check();
    const now = performance.now();
    // ~20 Hz is plenty; phase changes and the last step always go through.
    if (p.phase === lastPhase && now - last < 50 && p.done < p.total && !p.metrics) return;
    last = now;
    lastPhase = p.phase;
    post({ type: 'progress', progress: p });
  };
  let project: Project | null = null;
  try {
    const request = REQUESTS[input.kind].parse(input.request);
    project = input.file === null ? null : Project.open(input.file, { worker: true });
    const result = await runJobKind(input.kind, project, request as never, {
      signal,
      progress,
      jobId: input.jobId,
    });
    post({ type: 'done', result });
  } catch (e) {
    const error = toErrorData(e);
    if (error.code === 'CANCELLED' || signal.aborted) post({ type: 'cancelled' });
    else {
      if (error.code === 'INTERNAL') console.error(`job ${input.kind} ${input.jobId} failed:`, e);
      post({ type: 'failed', error });
    }
  } finally {
    project?.close();
  }
}

await main();
port.close();
