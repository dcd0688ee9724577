// The browser host: the built renderer, project images and the contract over a WebSocket, bound to
// 127.0.0.1 and guarded by a per-run token. Used by `npm start` where Electron cannot run, and by the
// end-to-end tests. The renderer cannot tell it from Electron.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { JobEvent, WireMessage } from '../../shared/contract.ts';
import { toErrorData } from '../../shared/errors.ts';
import { Backend } from './backend.ts';
import { contentSecurityPolicy } from './csp.ts';

export interface HostOptions {
  port?: number;
  dataDir: string;
  rendererDir: string;
  token?: string;
}

export interface Host {
  url: string;
  token: string;
  port: number;
  backend: Backend;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

function sameToken(a: string | null, b: string): boolean {
  if (!a || a.length !== b.length) return false;
  return crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

export async function startHost(options: HostOptions): Promise<Host> {
  const token = options.token ?? crypto.randomBytes(24).toString('hex');
  const sockets = new Set<WebSocket>();
  const broadcast = (event: JobEvent): void => {
    const msg = JSON.stringify({ event } satisfies WireMessage);
    for (const s of sockets) s.send(msg);
  };
  const backend = new Backend({ dataDir: options.dataDir, transport: 'websocket', onEvent: broadcast });
  const root = path.resolve(options.rendererDir);
  let port = 0;

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      // DNS-rebinding guard: only our own address may be asked for.
      if (req.headers.host !== `127.0.0.1:${port}` && req.headers.host !== `localhost:${port}`) {
        res.writeHead(421).end();
        return;
      }
      const headers = {
        'Content-Security-Policy': contentSecurityPolicy(`ws://127.0.0.1:${port}`),
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'Cache-Control': 'no-store',
      };
      if (req.method !== 'GET') {
        res.writeHead(405, headers).end();
        return;
      }
      const img = /^\/img\/(\d+)$/.exec(url.pathname);
      if (img) {
        if (!sameToken(url.searchParams.get('token'), token)) {
          res.writeHead(403, headers).end();
          return;
        }
        try {
          const size = Math.min(512, Math.max(16, Number(url.searchParams.get('size') ?? 128) || 128));
          const body = await backend.thumbnail(Number(img[1]), size);
          res.writeHead(200, { ...headers, 'Content-Type': 'image/jpeg' }).end(body);
        } catch (e) {
          res.writeHead(404, headers).end(toErrorData(e).message);
        }
        return;
      }
      const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '');
      const file = path.resolve(root, rel);
      if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
        res.writeHead(404, headers).end('not found');
        return;
      }
      res.writeHead(200, {
        ...headers,
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      });
      fs.createReadStream(file).pipe(res);
    })();
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 8 * 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const origin = req.headers.origin;
    const originOk = origin === `http://127.0.0.1:${port}` || origin === `http://localhost:${port}`;
    if (url.pathname !== '/rpc' || !sameToken(url.searchParams.get('token'), token) || !originOk) {
      socket.write('HTTP/1.1 403 Forbidden\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', (data) => {
        let req: { id?: unknown; channel?: unknown; input?: unknown };
        try {
          req = JSON.parse(
            (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString('utf8'),
          ) as typeof req;
        } catch {
          return;
        }
        if (typeof req.id !== 'number' || typeof req.channel !== 'string') return;
        const id = req.id;
        void backend
          .invoke(req.channel, req.input)
          .then((result) => ws.send(JSON.stringify({ id, result } satisfies WireMessage)));
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/#token=${token}`,
    token,
    port,
    backend,
    close: async () => {
      for (const s of sockets) s.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
      await backend.close();
    },
  };
}
