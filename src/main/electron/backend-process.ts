// The engine's process under Electron (a utilityProcess): the same Backend the browser host uses, fed
// by messages from the main process.

import path from 'node:path';
import { Backend } from '../host/backend.ts';

interface Incoming {
  id: number;
  channel?: string;
  input?: unknown;
  thumbnail?: { imageId: number; size: number };
}

const port = process.parentPort;
const backend = new Backend({
  dataDir: process.env.FEWSHOT_DATA_DIR ?? path.join(process.env.HOME ?? '.', '.fewshot-lab'),
  transport: 'electron',
  onEvent: (event) => port.postMessage({ event }),
});

port.on('message', (e: { data: Incoming }) => {
  const msg = e.data;
  if (msg.thumbnail) {
    backend
      .thumbnail(msg.thumbnail.imageId, msg.thumbnail.size)
      .then((b) => port.postMessage({ id: msg.id, thumbnail: b.toString('base64') }))
      .catch(() => port.postMessage({ id: msg.id, thumbnail: null }));
    return;
  }
  void backend
    .invoke(String(msg.channel), msg.input)
    .then((result) => port.postMessage({ id: msg.id, result }));
});
