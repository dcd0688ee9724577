// Embeddings export: one feature vector per image (the features the linear head trains on), as CSV or
// as a NumPy .npy with a rows sidecar. The file's extension names its format.

import type { ErrorCode } from './errors.ts';

export const EMBEDDING_FORMATS = ['csv', 'npy'] as const;
export type EmbeddingFormat = (typeof EMBEDDING_FORMATS)[number];

/** The format an output path names by its extension (case-insensitive), or null for any other. */
export function embeddingFormatOf(file: string): EmbeddingFormat | null {
  const m = /\.([^./\\]+)$/.exec(file);
  const ext = m?.[1]?.toLowerCase();
  return EMBEDDING_FORMATS.find((f) => f === ext) ?? null;
}

/** `features.npy` → `features.rows.csv`: the sidecar that names the .npy's rows. */
export function embeddingRowsFile(npyFile: string): string {
  return npyFile.replace(/\.npy$/i, '.rows.csv');
}

/** An image that could not be read or decoded: left out of the export, with the reason. */
export interface SkippedImage {
  path: string;
  code: ErrorCode;
  message: string;
}

export interface EmbeddingsSummary {
  backbone: string;
  format: EmbeddingFormat;
  /** The export's absolute path. */
  out: string;
  /** The .npy's rows sidecar (`index,path,label,group`); null for CSV. */
  rowsFile: string | null;
  rows: number;
  dim: number;
  /** Excluded images were kept, with an `excluded` column. */
  includeExcluded: boolean;
  skipped: SkippedImage[];
  /** Vectors read from the project's feature cache, and computed now. */
  fromCache: number;
  computed: number;
  /** Where the backbone ran ("CPU", "CUDA", …). */
  device: string;
  seconds: number;
}
