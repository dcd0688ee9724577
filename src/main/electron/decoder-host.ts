// The shell's side of decoders: the engine asks for one (see decoder-broker.ts), the shell starts a
// utility process running its own decode worker, and hands the engine a port straight to it, so image
// bytes never pass through this process. A decoder that crashes or hangs is reported to the engine,
// which fails that one file; all of them go when their engine does.

import { MessageChannelMain, utilityProcess, type MessagePortMain, type UtilityProcess } from 'electron';
import type { FromShell, ToShell } from '../engine/image/decoder-broker.ts';

export interface DecoderHost {
  /** A message from the engine: true when it was about decoders (and is handled here). */
  handle(message: unknown): boolean;
  /** The engine is gone: its decoders go too. */
  close(): void;
}

function isToShell(message: unknown): message is ToShell {
  const d = (message as { decoder?: { op?: unknown; id?: unknown } } | null)?.decoder;
  return typeof d?.id === 'number' && (d.op === 'open' || d.op === 'kill');
}

export function decoderHost(engine: UtilityProcess, decodeWorker: string): DecoderHost {
  const decoders = new Map<number, UtilityProcess>();
  let closed = false;
  const tell = (message: FromShell, ports: MessagePortMain[] = []): void => {
    if (!closed) engine.postMessage(message, ports);
  };

  const open = (id: number): void => {
    let child: UtilityProcess;
    try {
      child = utilityProcess.fork(decodeWorker, [], {
        serviceName: 'FewShot Lab image decoder',
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (e) {
      tell({ decoder: { op: 'exit', id, code: null, stderr: (e as Error).message } });
      return;
    }
    decoders.set(id, child);
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-2000);
    });
    child.on('exit', (code) => {
      decoders.delete(id);
      tell({ decoder: { op: 'exit', id, code, stderr } });
    });
    const { port1, port2 } = new MessageChannelMain();
    child.postMessage({ decoder: 'port' }, [port1]);
    tell({ decoder: { op: 'opened', id } }, [port2]);
  };

  return {
    handle(message) {
      if (!isToShell(message)) return false;
      const d = message.decoder;
      if (d.op === 'open') open(d.id);
      else decoders.get(d.id)?.kill();
      return true;
    },
    close() {
      closed = true;
      for (const child of decoders.values()) child.kill();
      decoders.clear();
    },
  };
}
