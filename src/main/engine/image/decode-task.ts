// What a decode process does with untrusted bytes: validate a file for the import (size, format, pages,
// the hashed DICOM patient group), or decode and crop it for a model (batch classification of new files).
// Runs in a child process so that a decoder that crashes or hangs on a hostile file takes down only that
// file.

import type { PreprocessSpec } from '../../../shared/backbones.ts';
import type { HighBitDepth, RejectCode } from '../../../shared/domain.ts';
import {
  DEFAULT_LIMITS,
  ImageError,
  hasSeparablePages,
  pageImages,
  validateImage,
  type DecodeLimits,
  type ImageInfo,
  type PageImage,
  type RgbImage,
} from './decode.ts';
import { dicomGroupKey } from './dicom.ts';
import { evalCrop, evalViews } from './preprocess.ts';
import type { ViewSpec } from '../../../shared/tta.ts';
import { DIM_16BIT_MAX, brightest16, windowed } from './windowing.ts';

export type DecodeRequest =
  | {
      id: number;
      op: 'validate';
      bytes: Uint8Array;
      limits: DecodeLimits;
      /** 'each': every page of a multi-page TIFF or frame of a multi-frame DICOM comes back as a PNG. */
      frames?: 'first' | 'each';
    }
  | {
      id: number;
      op: 'crop';
      bytes: Uint8Array;
      limits: DecodeLimits;
      spec: PreprocessSpec;
      highBitDepth: HighBitDepth;
      /** Test-time augmentation: every view from one decode (the first is the centre crop). */
      views?: ViewSpec[];
    };

export type DecodeReply =
  | {
      id: number;
      ok: true;
      op: 'validate';
      info: ImageInfo;
      dicomGroup: string | null;
      pages?: PageImage[];
      /** A 16-bit image whose data fills less than a quarter of the range (10- to 14-bit cameras). */
      dim16?: boolean;
    }
  | { id: number; ok: true; op: 'crop'; rgb: RgbImage; views?: RgbImage[] }
  | { id: number; ok: false; code: RejectCode; message: string };

async function run(req: DecodeRequest): Promise<DecodeReply> {
  const limits = req.limits ?? DEFAULT_LIMITS;
  if (req.op === 'crop') {
    const bytes = await windowed(req.bytes, req.highBitDepth, limits);
    if (req.views && req.views.length > 1) {
      const views = await evalViews(bytes, req.spec, req.views, limits);
      return { id: req.id, ok: true, op: 'crop', rgb: views[0] as RgbImage, views };
    }
    const rgb = await evalCrop(bytes, req.spec, limits);
    return { id: req.id, ok: true, op: 'crop', rgb };
  }
  const info = await validateImage(req.bytes, limits);
  // DICOM: the patient (hashed, never stored in clear) keeps their images on one side of every split.
  const dicomGroup = info.format === 'dicom' ? dicomGroupKey(req.bytes) : null;
  const brightest = await brightest16(req.bytes, limits);
  const dim16 = brightest !== null && brightest < DIM_16BIT_MAX;
  if (req.frames === 'each' && hasSeparablePages(info))
    return {
      id: req.id,
      ok: true,
      op: 'validate',
      info,
      dicomGroup,
      dim16,
      pages: await pageImages(req.bytes, info, limits),
    };
  return { id: req.id, ok: true, op: 'validate', info, dicomGroup, dim16 };
}

export async function decodeTask(req: DecodeRequest): Promise<DecodeReply> {
  try {
    return await run(req);
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

/** What a utility process under Electron is handed: the port to the engine that asked for it. */
interface UtilityPort {
  on(event: 'message', listener: (e: { data: DecodeRequest }) => void): void;
  on(event: 'close', listener: () => void): void;
  postMessage(message: unknown): void;
  start(): void;
}
interface UtilityParent {
  once(event: 'message', listener: (e: { ports: UtilityPort[] }) => void): void;
}

/**
 * Answers decode requests arriving over the process channel until the parent disconnects — or, in an
 * Electron utility process (see decoder-process.ts), over the port the shell hands it until that closes.
 */
export function serveDecodeTasks(handler: (req: DecodeRequest) => Promise<DecodeReply>): void {
  const parent = (process as unknown as { parentPort?: UtilityParent }).parentPort;
  if (parent) {
    parent.once('message', ({ ports: [port] }) => {
      if (!port) process.exit(1);
      port.on('message', (e) => void handler(e.data).then((reply) => port.postMessage(reply)));
      port.on('close', () => process.exit(0));
      port.start();
      port.postMessage({ ready: true });
    });
    return;
  }
  if (!process.send) throw new Error('The decode worker must be started with an IPC channel.');
  process.on('message', (msg: DecodeRequest) => {
    void handler(msg).then((reply) => process.send?.(reply));
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}
