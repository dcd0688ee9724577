// Builds the object the preload exposes as `window.fewshot`: one function per contract channel and
// onJobEvent, nothing else (never ipcRenderer itself). Pure, so the allowlist is testable in plain Node.

import { CHANNEL_NAMES } from '../shared/channels.ts';

export type Invoke = (channel: string, input: unknown) => Promise<unknown>;
export type Subscribe = (listener: (event: unknown) => void) => () => void;

export function buildApi(invoke: Invoke, subscribe: Subscribe): Record<string, unknown> {
  const api: Record<string, unknown> = {};
  for (const channel of CHANNEL_NAMES) api[channel] = (input: unknown) => invoke(channel, input);
  api.onJobEvent = (listener: (event: unknown) => void) => subscribe(listener);
  return Object.freeze(api);
}
