// The browser host's file browser: one folder's listing, inside the folders the host may show.

import { listFolder } from '../../services/files.ts';
import type { HandlerMap } from './types.ts';

export function filesHandlers(): HandlerMap<'files.list'> {
  return {
    'files.list': async (req) => listFolder(req),
  };
}
