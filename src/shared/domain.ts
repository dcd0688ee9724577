// Domain types shared by every layer: what an imported image is, why a file was refused.

import type { ErrorCode } from './errors.ts';

/** Why a file found during an import did not become an image of the project. */
export const REJECT_CODES = [
  'NOT_AN_IMAGE',
  'CORRUPT_IMAGE',
  'EMPTY_FILE',
  'IMAGE_TOO_LARGE',
  'UNSUPPORTED_IMAGE',
  'UNREADABLE',
  'DECODER_CRASHED',
  'DECODE_TIMEOUT',
] as const satisfies readonly ErrorCode[];
export type RejectCode = (typeof REJECT_CODES)[number];

export interface RejectedFile {
  /** Path relative to the import root, with forward slashes. */
  path: string;
  code: RejectCode;
  message: string;
}

export interface ImportSummary {
  root: string;
  filesSeen: number;
  added: number;
  alreadyPresent: number;
  /** Same content found under another path in this import or an earlier one. */
  duplicates: number;
  rejected: RejectedFile[];
  perClass: Record<string, number>;
  groupsAssigned: number;
  /** Group-file rows naming no imported file. */
  groupsUnmatched: number;
  /** Multi-page TIFF or multi-frame DICOM files met (their first page only, unless each page was asked for). */
  multiPage: number;
  /** 16-bit images whose brightest sample is below 16384 (10- to 14-bit data): dark by the full range. */
  dim16Bit: number;
}

export type ImportProgress =
  | { phase: 'scanning'; filesSeen: number }
  | { phase: 'importing'; filesSeen: number; processed: number; added: number; rejected: number }
  | { phase: 'done'; summary: ImportSummary };

export interface FeatureSummary {
  backbone: string;
  images: number;
  computed: number;
  fromCache: number;
  failed: number;
  seconds: number;
  imagesPerSecond: number;
}

// A damaged project file: what recovery saved, and the copies that could replace it.

export interface TableRecovery {
  table: string;
  recovered: number;
  /** Rows the damaged file still counts but that could not be read; null when even the count fails. */
  lost: number | null;
  /** Rows dropped because what they pointed to was lost (an image whose bytes are gone). */
  orphans: number;
  note?: string;
}

export interface RecoveryReport {
  /** The new project holding what could be read. */
  file: string;
  source: string;
  tables: TableRecovery[];
  /** Whether the recovered audit trail's hash chain is whole (lost entries break it, visibly). */
  auditIntact: boolean;
}

export interface BackupInfo {
  file: string;
  bytes: number;
  modifiedAt: string;
  /** 'ok' after SQLite's quick check, otherwise what is wrong. */
  status: string;
  images: number | null;
}

/**
 * How 16-bit PNG/TIFF samples become the 8 bits every model sees: 'full' maps 0–65535 linearly onto
 * 0–255; 'percentile' maps each image's 0.5th–99.5th percentile onto 0–255 and clips the rest (for 10-,
 * 12- or 14-bit camera data stored in 16-bit files, which the full range renders nearly black).
 */
export const HIGH_BIT_DEPTH_POLICIES = ['full', 'percentile'] as const;
export type HighBitDepth = (typeof HIGH_BIT_DEPTH_POLICIES)[number];
export const PERCENTILE_WINDOW = { low: 0.5, high: 99.5 } as const;
