// Choosing a file or a folder: what the browser host's folder listing takes and answers, and what the
// desktop app's native dialog is asked for. Both pick an absolute path for a text field that also takes
// a typed one.

import { z } from 'zod';
import { pathSchema } from './requests.ts';

export const PICK_KINDS = ['folder', 'file'] as const;
export type PickKind = (typeof PICK_KINDS)[number];

/** An extension as the filter takes it: ".onnx" or "onnx", letters and digits only. */
const extensionSchema = z
  .string()
  .regex(/^\.?[a-z0-9]{1,16}$/i, 'an extension is letters and digits, like ".onnx"')
  .transform((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase());

export const FilesListSchema = z.strictObject({
  /** An absolute folder (or a file, whose folder is listed); absent, the first root. */
  path: pathSchema.optional(),
  kind: z.enum(PICK_KINDS),
  /** For kind "file": only files with these extensions are listed (folders always are). */
  extensions: z.array(extensionSchema).max(20).optional(),
  /** Names starting with a dot are left out unless asked for. */
  showHidden: z.boolean().optional(),
});
export type FilesListRequest = z.output<typeof FilesListSchema>;

export interface FileEntry {
  name: string;
  kind: 'folder' | 'file';
  /** Bytes; null for a folder. */
  size: number | null;
  /** Last modified, ISO 8601. */
  mtime: string;
}

export interface BrowseRoot {
  label: string;
  path: string;
}

export interface FolderListing {
  /** The folder listed, absolute, with links resolved. */
  path: string;
  /** Its parent, or null at a root. */
  parent: string | null;
  /** From the root that holds it down to the folder itself. */
  crumbs: { name: string; path: string }[];
  roots: BrowseRoot[];
  /** Folders first, then files, each by name. */
  entries: FileEntry[];
  /** Entries left out past the listing's limit (0 when every one is listed). */
  truncated: number;
  /** The file asked for, when the request named a file rather than a folder. */
  selected: string | null;
  /** Path separator of the host, for joining a typed name onto `path`. */
  separator: '/' | '\\';
}

/** What the desktop app's native dialog is asked for (parsed in the main process: it arrives as unknown). */
export const PickRequestSchema = z.strictObject({
  kind: z.enum(PICK_KINDS),
  /** "save" asks for a file that may not exist yet (a new project file). */
  purpose: z.enum(['open', 'save']).optional(),
  title: z.string().max(200).optional(),
  extensions: z.array(extensionSchema).max(20).optional(),
  /** A name for the filter, e.g. "Backbones". */
  filterName: z.string().max(100).optional(),
  defaultPath: pathSchema.optional(),
});
export type PickRequest = z.input<typeof PickRequestSchema>;
export type ParsedPickRequest = z.output<typeof PickRequestSchema>;

/** The chosen absolute path, or null when the dialog was cancelled. */
export interface PickResult {
  path: string | null;
}
