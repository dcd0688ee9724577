// The engine's side of decoders under Electron: a pool in any thread of the engine asks, on the
// DECODER_REQUESTS BroadcastChannel, for a decoder; the broker, in the engine's main thread, asks the
// shell to start a utility process for it, then carries messages between the pool's own BroadcastChannel
// and the port the shell hands over to the decoder. Plain Node, so it needs no electron import; see
// decoder-process.ts for why decoders are not forked under Electron.

import { BroadcastChannel } from 'node:worker_threads';
import type { DecodeRequest } from './decode-task.ts';
import {
  DECODER_REQUESTS,
  type BrokerToPool,
  type DecoderOpen,
  type FromDecoder,
  type PoolToBroker,
} from './decoder-process.ts';

/** The port to one decoder (Electron's MessagePortMain in the engine). */
export interface DecoderLink {
  post(request: DecodeRequest): void;
  onMessage(listener: (message: FromDecoder) => void): void;
  close(): void;
}

/** The engine asks the shell: start decoder `id`, or stop it. */
export type ToShell = { decoder: { op: 'open'; id: number } | { op: 'kill'; id: number } };
/** The shell answers: decoder `id` is started (its port comes with the message), or it has exited. */
export type FromShell = {
  decoder: { op: 'opened'; id: number } | { op: 'exit'; id: number; code: number | null; stderr: string };
};

export function isFromShell(message: unknown): message is FromShell {
  const d = (message as { decoder?: { op?: unknown; id?: unknown } } | null)?.decoder;
  return typeof d?.id === 'number' && (d.op === 'opened' || d.op === 'exit');
}

export interface DecoderBroker {
  fromShell(message: FromShell, link: DecoderLink | null): void;
  /** The engine is going: every pool waiting on a decoder hears it exit. */
  close(): void;
}

type Channel = BroadcastChannel & { ref(): void; unref(): void };

interface Brokered {
  channel: Channel;
  link: DecoderLink | null;
}

export function serveDecoderBroker(toShell: (message: ToShell) => void): DecoderBroker {
  const decoders = new Map<number, Brokered>();
  let nextId = 1;
  // Never what keeps the engine alive: its port to the shell does that.
  const requests = new BroadcastChannel(DECODER_REQUESTS) as Channel;
  requests.unref();
  requests.onmessage = (e) => {
    const name = (e.data as DecoderOpen | null)?.open;
    if (typeof name !== 'string' || !name.startsWith(`${DECODER_REQUESTS}.`)) return;
    const id = nextId++;
    const channel = new BroadcastChannel(name) as Channel;
    channel.unref();
    const d: Brokered = { channel, link: null };
    decoders.set(id, d);
    channel.onmessage = (ev) => {
      const m = ev.data as PoolToBroker;
      if ('kill' in m) toShell({ decoder: { op: 'kill', id } });
      else d.link?.post(m.send);
    };
    toShell({ decoder: { op: 'open', id } });
  };

  const end = (id: number, code: number | null, stderr: string): void => {
    const d = decoders.get(id);
    if (!d) return;
    decoders.delete(id);
    d.channel.postMessage({ exit: code, stderr } satisfies BrokerToPool);
    d.channel.close();
    d.link?.close();
  };

  return {
    fromShell(message, link) {
      const m = message.decoder;
      const d = decoders.get(m.id);
      if (!d) {
        link?.close();
        return;
      }
      if (m.op === 'exit') return end(m.id, m.code, m.stderr);
      if (!link) return end(m.id, null, 'The shell started a decoder but gave no port to it.');
      d.link = link;
      link.onMessage((msg) => d.channel.postMessage({ message: msg } satisfies BrokerToPool));
      d.channel.postMessage({ attached: true } satisfies BrokerToPool);
    },
    close() {
      requests.close();
      for (const id of [...decoders.keys()]) end(id, null, 'The engine stopped.');
    },
  };
}
