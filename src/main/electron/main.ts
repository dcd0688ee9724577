// The Electron shell, kept thin: one secure window, the app:// protocol for the renderer and images, and
// a relay between the window and the backend, which runs in a utility process so that decoding,
// inference and training never block the window; when it dies, the relay restarts it (engine-relay.ts).

import path from 'node:path';
import { app, BrowserWindow, dialog, ipcMain, net, protocol, session } from 'electron';
import { PickRequestSchema, type PickResult } from '../../shared/files.ts';
import { contentSecurityPolicy } from '../host/csp.ts';
import { withMallocTunables } from '../engine/onnx/process-env.ts';
import { chosenPath, dialogPlan } from './dialog-options.ts';
import { electronEngine } from './engine-process.ts';
import { EngineRelay } from './engine-relay.ts';
import { imageRequest, resolveInside, webPreferences } from './window-options.ts';

protocol.registerSchemesAsPrivileged([
  { scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);

const here = import.meta.dirname;
const rendererDir = path.join(here, '..', '..', 'renderer');
let engine: EngineRelay | null = null;

function startBackend(win: BrowserWindow): EngineRelay {
  const resources = app.isPackaged ? process.resourcesPath : path.join(here, '..', '..', '..', 'resources');
  const relay = new EngineRelay({
    spawn: electronEngine({
      script: path.join(here, 'backend-process.js'),
      decodeWorker: path.join(here, 'decode-worker.js'),
      env: withMallocTunables({
        ...process.env,
        FEWSHOT_RESOURCES: resources,
        FEWSHOT_DATA_DIR: process.env.FEWSHOT_DATA_DIR ?? app.getPath('userData'),
      }),
    }),
    onEvent: (event) => win.webContents.send('fsl:event', event),
    // The window shows it as a banner (App.svelte).
    onNotice: (notice) => win.webContents.send('fsl:engine', notice),
  });
  relay.start();
  return relay;
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
      const b64 = (await engine?.thumbnail(img.id, img.size)) ?? null;
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
  const relay = startBackend(win);
  engine = relay;
  ipcMain.handle('fsl:invoke', (_e, channel: unknown, input: unknown) =>
    relay.invoke(String(channel), input),
  );
  // The native open/save dialog, over this window; the request arrives as unknown and is parsed first.
  ipcMain.handle('fsl:pick', async (_e, input: unknown): Promise<PickResult> => {
    const parsed = PickRequestSchema.safeParse(input);
    if (!parsed.success) return { path: null };
    const plan = dialogPlan(parsed.data);
    return chosenPath(
      plan.type === 'save'
        ? await dialog.showSaveDialog(win, plan.options)
        : await dialog.showOpenDialog(win, plan.options),
    );
  });
  void win.loadURL('app://renderer/index.html');
});

app.on('window-all-closed', () => {
  // The engine closes its project first, so the project's write lock goes with it.
  void (engine?.close() ?? Promise.resolve()).then(() => app.quit());
});
