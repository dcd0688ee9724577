// Builds the object the preload exposes as `window.fewshot`: one function per contract channel,
// onJobEvent, pickPath (the native open/save dialog), pathForFile (where a dropped folder is) and
// onEngineNotice (the engine stopped and was restarted), nothing else (never ipcRenderer itself). Pure, so the allowlist is testable in plain Node.

import { CHANNEL_NAMES } from '../shared/channels.ts';

export type Invoke = (channel: string, input: unknown) => Promise<unknown>;
export type Subscribe = (listener: (event: unknown) => void) => () => void;
export type Pick = (request: unknown) => Promise<unknown>;
/** The path on disk of a file or folder dropped on the window (Electron's webUtils.getPathForFile). */
export type PathOf = (file: unknown) => string;

export function buildApi(
  invoke: Invoke,
  subscribe: Subscribe,
  pick?: Pick,
  subscribeEngine?: Subscribe,
  pathOf?: PathOf,
): Record<string, unknown> {
  const api: Record<string, unknown> = {};
  for (const channel of CHANNEL_NAMES) api[channel] = (input: unknown) => invoke(channel, input);
  api.onJobEvent = (listener: (event: unknown) => void) => subscribe(listener);
  if (pick) api.pickPath = (request: unknown) => pick(request);
  if (pathOf) api.pathForFile = (file: unknown) => pathOf(file);
  if (subscribeEngine)
    api.onEngineNotice = (listener: (notice: unknown) => void) => subscribeEngine(listener);
  return Object.freeze(api);
}
