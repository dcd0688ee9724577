// What a decode process does for the import: validate one file's bytes and report its size, format and
// (for DICOM) the hashed patient group — or the typed reason it cannot be imported. Runs in a child
// process so that a decoder that crashes or hangs on a hostile file takes down only that file.

import type { RejectCode } from '../../../shared/domain.ts';
import {
  DEFAULT_LIMITS,
  ImageError,
  hasSeparablePages,
  pageImages,
  validateImage,
  type DecodeLimits,
  type ImageInfo,
  type PageImage,
} from './decode.ts';
import { dicomGroupKey } from './dicom.ts';

export interface DecodeRequest {
  id: number;
  bytes: Uint8Array;
  limits: DecodeLimits;
  /** 'each': every page of a multi-page TIFF or frame of a multi-frame DICOM comes back as a PNG. */
  frames?: 'first' | 'each';
}

export type DecodeReply =
  | { id: number; ok: true; info: ImageInfo; dicomGroup: string | null; pages?: PageImage[] }
  | { id: number; ok: false; code: RejectCode; message: string };

export async function validateTask(req: DecodeRequest): Promise<DecodeReply> {
  try {
    const info = await validateImage(req.bytes, req.limits ?? DEFAULT_LIMITS);
    // DICOM: the patient (hashed, never stored in clear) keeps their images on one side of every split.
    const dicomGroup = info.format === 'dicom' ? dicomGroupKey(req.bytes) : null;
    if (req.frames === 'each' && hasSeparablePages(info))
      return { id: req.id, ok: true, info, dicomGroup, pages: await pageImages(req.bytes, info, req.limits) };
    return { id: req.id, ok: true, info, dicomGroup };
  } catch (e) {
    if (e instanceof ImageError) return { id: req.id, ok: false, code: e.reject, message: e.message };
    return {
      id: req.id,
      ok: false,
      code: 'CORRUPT_IMAGE',
      message: `Decoding failed: ${(e as Error).message ?? String(e)}`,
    };
  }
}

/** Answers decode requests arriving over the process channel until the parent disconnects. */
export function serveDecodeTasks(handler: (req: DecodeRequest) => Promise<DecodeReply>): void {
  if (!process.send) throw new Error('The decode worker must be started with an IPC channel.');
  process.on('message', (msg: DecodeRequest) => {
    void handler(msg).then((reply) => process.send?.(reply));
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}
