// The prediction service's HTTP plumbing: the image from a request body (raw bytes or the first file of a
// multipart form) under a size limit, JSON answers, and the HTTP status of each error code.

import type http from 'node:http';
import { FewShotError, type ErrorCode, type ErrorData } from '../../../shared/errors.ts';

/** The largest request body read (a larger one is IMAGE_TOO_LARGE, 413, before or while it arrives). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * 4xx for what is wrong with the request or its file, 5xx for what is wrong here. A decoder that crashes
 * or hangs on a file is the file's doing (the same file does it again; the service goes on), so 422.
 */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  EMPTY_FILE: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  IMAGE_TOO_LARGE: 413,
  NOT_AN_IMAGE: 415,
  UNSUPPORTED_IMAGE: 415,
  CORRUPT_IMAGE: 422,
  DECODER_CRASHED: 422,
  DECODE_TIMEOUT: 422,
  CANCELLED: 503,
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

export function sendError(
  res: http.ServerResponse,
  error: ErrorData,
  headers: Record<string, string> = {},
): number {
  const status = statusOf(error.code);
  sendJson(res, status, { error }, headers);
  return status;
}

function tooLarge(limit: number): FewShotError {
  return new FewShotError(
    'IMAGE_TOO_LARGE',
    `The request body is larger than ${Math.round(limit / (1024 * 1024))} MiB.`,
  );
}

/**
 * The whole body, refused as IMAGE_TOO_LARGE once it passes `limit` (by its Content-Length at once, or
 * while a chunked body arrives: nothing more is kept from then on).
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => {
      if (!failed) reject(new FewShotError('INVALID_INPUT', `The request was cut off: ${e.message}`));
      failed = true;
    });
  });
}

/** The boundary of a multipart/form-data content type, or null for any other body. */
function boundaryOf(contentType: string | undefined): string | null {
  if (!/^multipart\/form-data\s*;/i.test(contentType ?? '')) return null;
  const m = /;\s*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType as string);
  const b = m?.[1] ?? m?.[2];
  if (!b) throw new FewShotError('INVALID_INPUT', 'The multipart/form-data body names no boundary.');
  return b;
}

/**
 * The first file part of a multipart/form-data body (RFC 7578: a part whose Content-Disposition has a
 * filename). The whole body is in memory already, under the size limit, so this is a scan for delimiters.
 */
function firstFilePart(body: Buffer, boundary: string): Uint8Array {
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const after = at + delimiter.length;
    if (body.subarray(after, after + 2).toString('latin1') === '--') break; // the closing delimiter
    const headersEnd = body.indexOf('\r\n\r\n', after);
    if (headersEnd === -1) break;
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd + 4);
    if (next === -1) break;
    const headers = body.subarray(after, headersEnd).toString('utf8');
    const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1] ?? '';
    if (/;\s*filename\*?=/i.test(disposition)) return body.subarray(headersEnd + 4, next);
    at = next + 2;
  }
  throw new FewShotError(
    'INVALID_INPUT',
    'The multipart/form-data body has no file part; send the image as a file field (curl -F image=@file).',
  );
}

/** The image of a request: the body itself, or the first file part of a multipart/form-data body. */
export function imageOf(contentType: string | undefined, body: Buffer): Uint8Array {
  const boundary = boundaryOf(contentType);
  return boundary === null ? body : firstFilePart(body, boundary);
}
