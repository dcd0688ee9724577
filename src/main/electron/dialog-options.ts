// What the desktop app's native open/save dialog is asked for, from the window's pick request: a pure
// module, so a plain-Node test can check it (Electron itself does not run under the tests).

import type { ParsedPickRequest, PickResult } from '../../shared/files.ts';

/** The parts of Electron's OpenDialogOptions this app sets. */
export interface OpenOptions {
  title?: string;
  defaultPath?: string;
  properties: ('openFile' | 'openDirectory' | 'createDirectory' | 'dontAddToRecent')[];
  filters?: { name: string; extensions: string[] }[];
}

/** The parts of Electron's SaveDialogOptions this app sets. */
export interface SaveOptions {
  title?: string;
  defaultPath?: string;
  properties: 'createDirectory'[];
  filters?: { name: string; extensions: string[] }[];
}

export type DialogPlan = { type: 'open'; options: OpenOptions } | { type: 'save'; options: SaveOptions };

export function dialogPlan(req: ParsedPickRequest): DialogPlan {
  // Electron's filters take extensions without their dot; "All files" stays available beside them.
  const filters =
    req.kind === 'file' && req.extensions?.length
      ? [
          {
            name: req.filterName ?? req.extensions.join(', '),
            extensions: req.extensions.map((e) => e.slice(1)),
          },
          { name: 'All files', extensions: ['*'] },
        ]
      : undefined;
  const common = {
    ...(req.title ? { title: req.title } : {}),
    ...(req.defaultPath ? { defaultPath: req.defaultPath } : {}),
    ...(filters ? { filters } : {}),
  };
  // "save" names a file that may exist already (a project to open) or not yet (one to create): the app
  // never overwrites it, so the dialog does not ask about replacing it.
  if (req.purpose === 'save')
    return { type: 'save', options: { ...common, properties: ['createDirectory'] } };
  return {
    type: 'open',
    options: {
      ...common,
      properties:
        req.kind === 'folder'
          ? ['openDirectory', 'createDirectory', 'dontAddToRecent']
          : ['openFile', 'dontAddToRecent'],
    },
  };
}

/** The path the user chose from either dialog's answer, or null when it was cancelled. */
export function chosenPath(r: { canceled: boolean; filePaths?: string[]; filePath?: string }): PickResult {
  if (r.canceled) return { path: null };
  return { path: r.filePath || r.filePaths?.[0] || null };
}
