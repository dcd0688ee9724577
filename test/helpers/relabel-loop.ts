// A window's side of relabelling, as a separate process: opens a project through the backend and relabels
// its images one call at a time, printing "saved <id>" only after the call has answered ok — what the UI
// would show as saved. The durability test kills this process with SIGKILL partway.

import { Backend } from '../../src/main/host/backend.ts';

const [file, dataDir] = process.argv.slice(2) as [string, string];
const backend = new Backend({ dataDir, transport: 'websocket', onEvent: () => {} });
const opened = await backend.invoke('project.open', { file });
if (!opened.ok) throw new Error(opened.error.message);
const page = await backend.invoke('dataset.images', { offset: 0, limit: 2000 });
if (!page.ok) throw new Error(page.error.message);
const images = (page.value as { images: { id: number }[] }).images;
process.stdout.write(`ready ${images.length}\n`);
for (let round = 0; ; round++) {
  for (const img of images) {
    const r = await backend.invoke('dataset.relabel', {
      imageIds: [img.id],
      className: `relabelled-${round}`,
    });
    if (!r.ok) throw new Error(r.error.message);
    process.stdout.write(`saved ${img.id} relabelled-${round}\n`);
  }
}
