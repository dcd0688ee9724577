// The window's security settings, kept in a pure module so a plain-Node test can assert them.

export interface SecureWebPreferences {
  contextIsolation: true;
  sandbox: true;
  nodeIntegration: false;
  nodeIntegrationInWorker: false;
  webSecurity: true;
  allowRunningInsecureContent: false;
  spellcheck: false;
  webviewTag: false;
  navigateOnDragDrop: false;
  preload: string;
}

export function webPreferences(preload: string): SecureWebPreferences {
  return {
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    spellcheck: false, // the spellchecker downloads dictionaries
    webviewTag: false,
    navigateOnDragDrop: false,
    preload,
  };
}

/** Resolves an app://renderer/… path inside the renderer folder, or null for anything that escapes it. */
export function resolveInside(root: string, requestPath: string, sep = '/'): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(requestPath);
  } catch {
    return null;
  }
  // NUL, backslashes (Windows separators) and drive letters or ADS (':') never name a renderer file.
  if (decoded.includes('\0') || decoded.includes('\\') || decoded.includes(':')) return null;
  const parts: string[] = [];
  for (const part of decoded.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return null;
    parts.push(part);
  }
  if (parts.length === 0) parts.push('index.html');
  return [root.replace(/[\\/]+$/, ''), ...parts].join(sep);
}

/**
 * An app://img/… request: images are addressed by their id in the project, never by a path, so no file
 * outside the project's images can be named. Anything but `/<id>` is refused.
 */
export function imageRequest(url: URL): { id: number; size: number } | null {
  const m = /^\/(\d{1,12})$/.exec(url.pathname);
  if (!m) return null;
  const size = Math.min(512, Math.max(16, Number(url.searchParams.get('size') ?? 128) || 128));
  return { id: Number(m[1]), size };
}
