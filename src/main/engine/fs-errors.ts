// A file-system error as the few words a lab user needs: the same wording for imports, scans and batches.

/** 'permission denied', the caller's words for a path that vanished, or the system's error code. */
export function fsReason(e: unknown, vanished: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOENT') return vanished;
  return code ?? (e instanceof Error ? e.message : String(e));
}
