// The only module that talks to the host. In Electron the preload exposes `window.fewshot`; in the
// browser host the same contract runs over a WebSocket whose token comes in the page's URL fragment.

import type { Channel, FewShotApi, Input, JobEvent, Output, WireMessage } from '../../shared/contract.ts';
import type { EngineNotice } from '../../shared/engine.ts';
import type { Result } from '../../shared/errors.ts';
import type { PickRequest, PickResult } from '../../shared/files.ts';

declare global {
  interface Window {
    fewshot?: FewShotApi;
  }
}

type Pending = { resolve: (r: Result<unknown>) => void };

class SocketClient {
  private ws: WebSocket | null = null;
  private ready: Promise<WebSocket> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  readonly listeners = new Set<(e: JobEvent) => void>();
  constructor(private readonly token: string) {}

  private connect(): Promise<WebSocket> {
    if (this.ready) return this.ready;
    this.ready = new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${location.host}/rpc?token=${encodeURIComponent(this.token)}`);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error('Cannot reach the FewShot Lab host.'));
      ws.onclose = () => {
        this.ready = null;
        for (const p of this.pending.values())
          p.resolve({
            ok: false,
            error: { code: 'INTERNAL', message: 'The connection to the host closed.' },
          });
        this.pending.clear();
      };
      ws.onmessage = (m: MessageEvent<string>) => {
        const msg = JSON.parse(m.data) as WireMessage;
        if ('event' in msg) for (const l of this.listeners) l(msg.event);
        else {
          this.pending.get(msg.id)?.resolve(msg.result);
          this.pending.delete(msg.id);
        }
      };
      this.ws = ws;
    });
    return this.ready;
  }

  async invoke(channel: string, input: unknown): Promise<Result<unknown>> {
    const ws = await this.connect();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      ws.send(JSON.stringify({ id, channel, input }));
    });
  }
}

function tokenFromUrl(): string {
  return new URLSearchParams(location.hash.replace(/^#/, '')).get('token') ?? '';
}

const bridge = window.fewshot;
const socket = bridge ? null : new SocketClient(tokenFromUrl());

export async function call<C extends Channel>(channel: C, input: Input<C>): Promise<Result<Output<C>>> {
  if (bridge) return (bridge[channel] as (i: Input<C>) => Promise<Result<Output<C>>>)(input);
  return (await (socket as SocketClient).invoke(channel, input)) as Result<Output<C>>;
}

/** The desktop app's native open/save dialog; null in the browser host, whose window browses by itself. */
export function nativePicker(): ((request: PickRequest) => Promise<PickResult>) | null {
  const pick = bridge?.pickPath;
  return pick ? (request) => pick(request) : null;
}

/** Where a dropped file or folder is on disk: the desktop app knows; the browser host's window cannot. */
export function droppedPath(file: File): string | null {
  const p = bridge?.pathForFile?.(file);
  return p ? p : null;
}

/** The desktop app's notices about its engine (stopped and restarted); the browser host sends none. */
export function onEngineNotice(listener: (n: EngineNotice) => void): () => void {
  return bridge?.onEngineNotice?.(listener) ?? (() => undefined);
}

export function onJobEvent(listener: (e: JobEvent) => void): () => void {
  if (bridge) return bridge.onJobEvent(listener);
  (socket as SocketClient).listeners.add(listener);
  return () => (socket as SocketClient).listeners.delete(listener);
}

/** URL of a project image's thumbnail: app:// in Electron, the host's token-guarded route otherwise. */
export function imageUrl(id: number, size = 128): string {
  return bridge
    ? `app://img/${id}?size=${size}`
    : `/img/${id}?size=${size}&token=${encodeURIComponent(tokenFromUrl())}`;
}
