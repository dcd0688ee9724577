// The engine's side of the relay: the same Backend the browser host uses, fed by messages from the shell
// and answering on the same port. Plain Node: Electron's utility process and the tests' child process
// both serve it.

import { Backend, type BackendOptions } from '../host/backend.ts';
import type { FromEngine, ToEngine } from './engine-messages.ts';

export interface EnginePort {
  post(message: FromEngine): void;
  onMessage(listener: (message: ToEngine) => void): void;
}

export function serveEngine(
  port: EnginePort,
  options: Omit<BackendOptions, 'onEvent' | 'onProject'>,
): Backend {
  const backend = new Backend({
    ...options,
    onEvent: (event) => port.post({ event }),
    onProject: (file) => port.post({ project: file }),
  });
  port.onMessage((msg) => {
    if ('close' in msg) {
      void backend.close().finally(() => process.exit(0));
      return;
    }
    if ('thumbnail' in msg) {
      backend
        .thumbnail(msg.thumbnail.imageId, msg.thumbnail.size)
        .then((b) => port.post({ id: msg.id, thumbnail: b.toString('base64') }))
        .catch(() => port.post({ id: msg.id, thumbnail: null }));
      return;
    }
    void backend.invoke(String(msg.channel), msg.input).then((result) => port.post({ id: msg.id, result }));
  });
  return backend;
}
