// How the shell starts the engine under Electron: a utility process (never the window's loop), with the
// decoders it asks for started beside it (decoder-host.ts). Handed to the EngineRelay, which restarts it
// when it dies.

import { utilityProcess } from 'electron';
import type { FromEngine } from './engine-messages.ts';
import type { SpawnEngine } from './engine-relay.ts';
import { decoderHost } from './decoder-host.ts';

export interface EngineProcessOptions {
  /** The engine's entry (backend-process.js) and the decode worker's, both bundled beside main.js. */
  script: string;
  decodeWorker: string;
  env: Record<string, string | undefined>;
}

export function electronEngine(options: EngineProcessOptions): SpawnEngine {
  return (listeners) => {
    const child = utilityProcess.fork(options.script, [], {
      serviceName: 'FewShot Lab engine',
      env: options.env,
    });
    const decoders = decoderHost(child, options.decodeWorker);
    child.on('message', (message: unknown) => {
      if (!decoders.handle(message)) listeners.onMessage(message as FromEngine);
    });
    // A utility process reports only its exit code (a crash's signal is folded into it).
    child.on('exit', (code) => {
      decoders.close();
      listeners.onExit(`exit code ${code}`);
    });
    return { postMessage: (message) => child.postMessage(message), kill: () => child.kill() };
  };
}
