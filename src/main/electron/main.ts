// The Electron shell, kept thin: one secure window, the app:// protocol for the renderer and images, and
// a relay between the window and the backend, which runs in a utility process so that decoding,
// inference and training never block the window.

import path from 'node:path';
import {
  app,
  BrowserWindow,
  ipcMain,
  net,
  protocol,
  session,
  utilityProcess,
  type UtilityProcess,
} from 'electron';
import { contentSecurityPolicy } from '../host/csp.ts';
import { imageRequest, resolveInside, webPreferences } from './window-options.ts';

protocol.registerSchemesAsPrivileged([
  { scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);

const here = import.meta.dirname;
const rendererDir = path.join(here, '..', '..', 'renderer');
let backend: UtilityProcess | null = null;
let nextId = 1;
const pending = new Map<number, (value: unknown) => void>();

function request(message: Record<string, unknown>): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    backend?.postMessage({ ...message, id });
  });
}

function startBackend(win: BrowserWindow): void {
  const resources = app.isPackaged ? process.resourcesPath : path.join(here, '..', '..', '..', 'resources');
  backend = utilityProcess.fork(path.join(here, 'backend-process.js'), [], {
    serviceName: 'FewShot Lab engine',
    env: {
      ...process.env,
      FEWSHOT_RESOURCES: resources,
      FEWSHOT_DATA_DIR: process.env.FEWSHOT_DATA_DIR ?? app.getPath('userData'),
    },
  });
  backend.on(
    'message',
    (msg: { id?: number; result?: unknown; event?: unknown; thumbnail?: string | null }) => {
      if (msg.event !== undefined) win.webContents.send('fsl:event', msg.event);
      else if (msg.id !== undefined) {
        pending.get(msg.id)?.(msg.result ?? msg.thumbnail ?? null);
        pending.delete(msg.id);
      }
    },
  );
}

void app.whenReady().then(() => {
  const csp = contentSecurityPolicy("'none'");
  // No network request of any kind leaves the app.
  session.defaultSession.webRequest.onBeforeRequest((details, callback) =>
    callback({ cancel: !details.url.startsWith('app://') && !details.url.startsWith('devtools://') }),
  );
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);

  protocol.handle('app', async (req) => {
    const url = new URL(req.url);
    if (url.host === 'img') {
      const img = imageRequest(url);
      if (!img) return new Response('forbidden', { status: 403 });
      const b64 = (await request({ thumbnail: { imageId: img.id, size: img.size } })) as string | null;
      return b64
        ? new Response(Buffer.from(b64, 'base64'), {
            headers: { 'Content-Type': 'image/jpeg', 'Cache-Control': 'no-store' },
          })
        : new Response('not found', { status: 404 });
    }
    if (url.host !== 'renderer') return new Response('not found', { status: 404 });
    const file = resolveInside(rendererDir, url.pathname, path.sep);
    if (!file) return new Response('forbidden', { status: 403 });
    const res = await net.fetch(`file://${file}`);
    const headers = new Headers(res.headers);
    headers.set('Content-Security-Policy', csp);
    return new Response(res.body, { status: res.status, headers });
  });

  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    title: 'FewShot Lab',
    webPreferences: webPreferences(path.join(here, '..', '..', 'preload', 'preload.cjs')),
  });
  win.webContents.on('will-navigate', (e) => e.preventDefault());
  win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  startBackend(win);
  ipcMain.handle('fsl:invoke', (_e, channel: unknown, input: unknown) => request({ channel, input }));
  void win.loadURL('app://renderer/index.html');
});

app.on('window-all-closed', () => {
  backend?.kill();
  app.quit();
});
