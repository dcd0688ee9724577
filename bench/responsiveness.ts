// Prints how the app answers while long work runs: latencies of the data-set summary and of a thumbnail,
// asked every 250 ms through the backend during a last-stage fine-tuning of BCCD, beside the same requests
// with nothing running; then how long a cancel takes to end the job.
//
//   npm run bench:responsiveness [-- --seconds 30]

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Backend } from '../src/main/host/backend.ts';
import type { JobEvent } from '../src/shared/contract.ts';
import { BCCD, CACHE, requireShared } from './lib.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' } } });
requireShared();

const events: JobEvent[] = [];
const backend = new Backend({
  dataDir: path.join(CACHE, 'bench', 'responsiveness-data'),
  transport: 'websocket',
  onEvent: (e) => events.push(e),
});
const until = async (pred: (e: JobEvent) => boolean): Promise<JobEvent> => {
  for (;;) {
    const e = events.find(pred);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 10));
  }
};
const value = async <T>(channel: string, input: unknown): Promise<T> => {
  const r = await backend.invoke(channel, input);
  if (!r.ok) throw new Error(`${channel}: ${r.error.message}`);
  return r.value as T;
};

const file = path.join(CACHE, 'bench', `responsiveness-${process.pid}.fsl`);
fs.mkdirSync(path.dirname(file), { recursive: true });
await value('project.create', { file });
const imp = await value<{ jobId: string }>('dataset.import', {
  folder: BCCD,
  groupsCsv: path.join(BCCD, 'groups.csv'),
});
await until((e) => e.jobId === imp.jobId && e.type !== 'progress');
const ids = (
  await value<{ images: { id: number }[] }>('dataset.images', { offset: 0, limit: 500 })
).images.map((i) => i.id);

async function probe(ms: number): Promise<{ summary: number[]; thumbnail: number[] }> {
  const out = { summary: [] as number[], thumbnail: [] as number[] };
  const end = performance.now() + ms;
  let k = 0;
  while (performance.now() < end) {
    let t = performance.now();
    await value('dataset.summary', {});
    out.summary.push(performance.now() - t);
    t = performance.now();
    await backend.thumbnail(ids[k++ % ids.length] as number, 128);
    out.thumbnail.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 250));
  }
  return out;
}

const q = (xs: number[], p: number): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `${(s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0).toFixed(0)} ms`;
};
const row = (label: string, xs: number[]): void =>
  console.log(
    `${label.padEnd(34)} n=${String(xs.length).padStart(3)}  p50 ${q(xs, 0.5).padStart(7)}  max ${q(xs, 1).padStart(7)}`,
  );

const idle = await probe(5000);
const train = await value<{ jobId: string }>('train.start', {
  backbone: 'squeezenet1_1-imagenet',
  strategy: 'last-stage',
  seed: 0,
  epochs: 50,
});
const busy = await probe(Number(values.seconds) * 1000);
const phase = [...events].reverse().find((e) => e.jobId === train.jobId && e.type === 'progress');
const t0 = performance.now();
await value('jobs.cancel', { jobId: train.jobId });
const end = await until((e) => e.jobId === train.jobId && e.type !== 'progress');
const cancelMs = performance.now() - t0;

console.log('Requests through the backend (2 cores; one BCCD project, 1,133 images):');
row('dataset.summary, nothing running', idle.summary);
row('thumbnail 128 px, nothing running', idle.thumbnail);
row('dataset.summary, while fine-tuning', busy.summary);
row('thumbnail 128 px, while fine-tuning', busy.thumbnail);
console.log(
  `cancel → ${end.type} in ${cancelMs.toFixed(0)} ms (the job was at ${phase?.type === 'progress' ? `${phase.progress.phase} ${phase.progress.done}/${phase.progress.total}` : 'its start'})`,
);
const models = await value<{ models: unknown[] }>('train.models', {});
console.log(`models saved by the cancelled run: ${models.models.length}`);
await backend.close();
for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
