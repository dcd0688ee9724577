// The engine's process under Electron (a utilityProcess): the same Backend the browser host uses, fed
// by messages from the main process (see engine-endpoint.ts and, for what happens when it dies,
// engine-relay.ts). Decoders for untrusted files are utility processes the main process starts on the
// engine's behalf (decoder-broker.ts, decoder-host.ts).

import path from 'node:path';
import type { MessagePortMain } from 'electron';
import { isFromShell, serveDecoderBroker, type DecoderLink } from '../engine/image/decoder-broker.ts';
import { serveEngine } from './engine-endpoint.ts';
import type { FromEngine, ToEngine } from './engine-messages.ts';

const port = process.parentPort;

function linkTo(decoder: MessagePortMain): DecoderLink {
  return {
    post: (request) => decoder.postMessage(request),
    onMessage: (listener) => {
      decoder.on('message', (e) => listener(e.data as Parameters<typeof listener>[0]));
      decoder.start();
    },
    close: () => decoder.close(),
  };
}

const decoders = serveDecoderBroker((message) => port.postMessage(message));

serveEngine(
  {
    post: (message: FromEngine) => port.postMessage(message),
    onMessage: (listener) =>
      port.on('message', (e: { data: unknown; ports: MessagePortMain[] }) => {
        if (isFromShell(e.data)) {
          const [decoder] = e.ports;
          decoders.fromShell(e.data, decoder ? linkTo(decoder) : null);
        } else listener(e.data as ToEngine);
      }),
  },
  {
    dataDir: process.env.FEWSHOT_DATA_DIR ?? path.join(process.env.HOME ?? '.', '.fewshot-lab'),
    transport: 'electron',
  },
);
