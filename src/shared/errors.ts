// Stable error codes shared by the engine, the CLI and the UI. Errors are data: a code the UI can act on
// and a message a lab user can read; stacks stay in the main log.

export const ERROR_CODES = [
  'INVALID_INPUT',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  /** A path outside the folders the app may show (the browser host's file browser). */
  'PATH_NOT_ALLOWED',
  /** A request to the prediction service (`fewshot serve`) without its bearer token. */
  'UNAUTHORIZED',
  'UNSUPPORTED_IMAGE',
  'NOT_AN_IMAGE',
  'CORRUPT_IMAGE',
  'EMPTY_FILE',
  'IMAGE_TOO_LARGE',
  'UNREADABLE',
  'DECODER_CRASHED',
  'DECODE_TIMEOUT',
  'MODEL_MISSING',
  'MODEL_INVALID',
  'PROJECT_TOO_NEW',
  'PROJECT_INVALID',
  'PROJECT_CORRUPT',
  'PROJECT_READONLY',
  /** Another program (the app, a `fewshot` command) has the project open for writing; the message names it. */
  'PROJECT_IN_USE',
  /** The engine's process stopped (a native crash) while a request or a job was in flight. */
  'ENGINE_STOPPED',
  'DISK_FULL',
  'CANCELLED',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorData {
  code: ErrorCode;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorData };

/** An error that carries a stable code; anything else reaching a boundary becomes INTERNAL. */
export class FewShotError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FewShotError';
    this.code = code;
  }
}

export function isFewShotError(e: unknown): e is FewShotError {
  return e instanceof FewShotError;
}

/** Converts anything thrown into transferable error data. */
export function toErrorData(e: unknown): ErrorData {
  if (e instanceof FewShotError) return { code: e.code, message: e.message };
  if (e instanceof Error && e.name === 'AbortError') return { code: 'CANCELLED', message: 'Cancelled.' };
  // A full disk (SQLite's SQLITE_FULL, the file system's ENOSPC): what was committed before is kept.
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC')
    return {
      code: 'DISK_FULL',
      message:
        'The disk is full. Everything saved before this point is kept; free some space and start again — an import or a batch continues where it stopped.',
    };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}
