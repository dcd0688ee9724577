// The local prediction service (`fewshot serve`): one trained model of a project over HTTP, for other
// software on the same workstation (a scanner's or a LIMS's script). Loopback only unless a host is
// named; every request but the health check carries a per-start bearer token; images are decoded in the
// decode processes, so a file that crashes a decoder fails its request alone. The model is read from the
// project at start (read-only; nothing of the project is held while serving); start and stop are audited
// in it. The log names method, route, status and duration — never a file, its bytes or the token.

import { isFinetuned } from '../../../shared/strategies.ts';
import type { TtaKind } from '../../../shared/tta.ts';
import { fitModelTta } from '../../engine/review.ts';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FewShotError, toErrorData, type ErrorData } from '../../../shared/errors.ts';
import { DEFAULT_MIN_CONFIDENCE } from '../../engine/batch/classify-folder.ts';
import { DecodePool } from '../../engine/image/decode-pool.ts';
import { modelHighBitDepth } from '../../engine/image/windowing.ts';
import { loadModelRunner, type ModelRunner } from '../../engine/model-runner.ts';
import { Predictor } from '../../engine/serve/predictor.ts';
import type { ModelRecord } from '../../../shared/results.ts';
import type { Project } from '../../store/project.ts';
import { openProjectReadOnly, withProject } from '../projects.ts';
import { requireModel, withBackbone } from '../resources.ts';
import { recordServeEvent } from './audit.ts';
import { DEFAULT_MAX_BODY_BYTES, imageOf, readBody, sendError, sendJson } from './http-io.ts';
import { modelFacts, type ModelFacts } from './model-facts.ts';
import { bearerMatches, defaultTokenFile, newToken, removeTokenFile, writeTokenFile } from './token.ts';

export const DEFAULT_SERVE_PORT = 8765;
export const DEFAULT_SERVE_HOST = '127.0.0.1';

export interface ServeOptions {
  /** A model of the project by id or unique prefix. */
  modelId: string;
  /** Default 8765; 0 picks a free port (the bound one is in `port`). */
  port?: number;
  /** Default 127.0.0.1. Any other address lets other machines reach the service. */
  host?: string;
  /** Default: `serve/<port>.token` in the app's data folder. */
  tokenFile?: string;
  maxBodyBytes?: number;
  device?: 'auto' | 'cpu' | 'gpu';
  /** The most images one runtime call takes. */
  maxBatch?: number;
  /** Test-time augmentation for every request (its temperature is fitted once, at start). */
  tta?: TtaKind;
  /** The decode processes; by default the service starts its own and stops them when it stops. */
  decodePool?: DecodePool;
  /** One line per request: time, method, route, status, duration. */
  log?: (line: string) => void;
}

export interface ServeStats {
  requests: number;
  /** Answers with a 4xx or 5xx status. */
  failed: number;
  /** Runtime calls and the images they carried. */
  batches: number;
  images: number;
}

export interface PredictionService {
  url: string;
  host: string;
  port: number;
  token: string;
  tokenFile: string;
  model: ModelFacts;
  stats(): ServeStats;
  /**
   * Stops taking requests, lets those in flight finish (up to 10 s), releases the model, and records the
   * stop (waiting up to 30 s for another program's write to the project to end).
   */
  close(reason?: string): Promise<ServeStats>;
}

const ROUTES: Record<string, 'GET' | 'POST'> = {
  '/healthz': 'GET',
  '/v1/model': 'GET',
  '/v1/predict': 'POST',
};

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

function thresholdOf(raw: string | null): number {
  if (raw === null) return DEFAULT_MIN_CONFIDENCE;
  const t = Number(raw);
  if (raw.trim() === '' || !(t >= 0 && t <= 1))
    throw new FewShotError('INVALID_INPUT', 'threshold must be a number between 0 and 1.');
  return t;
}

function listen(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      const why =
        e.code === 'EADDRINUSE'
          ? `port ${port} is in use; choose another with --port`
          : e.code === 'EADDRNOTAVAIL'
            ? `${host} is not an address of this machine`
            : e.code === 'EACCES'
              ? `port ${port} needs privileges; choose one above 1023`
              : e.message;
      reject(new FewShotError('INVALID_INPUT', `Cannot listen on ${host}:${port}: ${why}.`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Serves a model of the project file `file` until close(). */
export async function startPredictionService(
  file: string,
  options: ServeOptions,
): Promise<PredictionService> {
  const host = options.host ?? DEFAULT_SERVE_HOST;
  const port = options.port ?? DEFAULT_SERVE_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new FewShotError('INVALID_INPUT', '--port is between 0 and 65535.');
  // The model is read once, through a read-only connection closed before serving begins: the service
  // holds neither a connection nor the write lock, so the project stays free for the app and commands.
  const project: Project = openProjectReadOnly(file);
  let runner: ModelRunner;
  let model: ModelRecord;
  let facts: ModelFacts;
  try {
    model = requireModel(project, options.modelId);
    runner = await loadModelRunner(
      project,
      model,
      undefined,
      options.device ? { device: options.device } : {},
    );
    facts = modelFacts(
      project,
      model,
      runner.embedder.spec,
      modelHighBitDepth(model),
      DEFAULT_MIN_CONFIDENCE,
    );
  } finally {
    project.close();
  }
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log = options.log ?? (() => undefined);
  const pool = options.decodePool ?? new DecodePool();
  /** Everything the service holds, let go (after a failed start, or at the stop). */
  const release = async (): Promise<void> => {
    await runner.release();
    if (!options.decodePool) pool.close();
  };
  // With views, a frozen-feature model's temperature for them is fitted once, through a short write open
  // (the views' features go into the project's cache), as batch classification does.
  const kind = options.tta ?? 'none';
  let tta: { kind: TtaKind; temperature: number | null; temperatureFrom: string } | null = null;
  if (kind !== 'none') {
    try {
      tta = isFinetuned(model)
        ? { kind, temperature: null, temperatureFrom: "the fine-tuned model's own temperature" }
        : await withProject(file, (p) =>
            withBackbone(model.backboneId, async (b) => {
              const fitted = await fitModelTta(p, b, model, kind);
              return { kind, temperature: fitted.temperature, temperatureFrom: fitted.from };
            }),
          );
    } catch (e) {
      await runner.release();
      throw e;
    }
    facts = { ...facts, tta };
  }
  const predictor = new Predictor(runner, pool, modelHighBitDepth(model), {
    maxBatch: options.maxBatch ?? 16,
    ...(tta ? { tta } : {}),
  });
  const token = newToken();
  const counts = { requests: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  let closing = false;

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, route: string): Promise<number> {
    const method = req.method ?? '';
    if (route === '/healthz' && method === 'GET') {
      sendJson(res, 200, { ok: true });
      return 200;
    }
    if (!bearerMatches(req.headers.authorization, token))
      return sendError(
        res,
        {
          code: 'UNAUTHORIZED',
          message: 'Send the token printed at start as "Authorization: Bearer <token>".',
        },
        { 'WWW-Authenticate': 'Bearer' },
      );
    const allowed = ROUTES[route];
    if (!allowed) return sendError(res, { code: 'NOT_FOUND', message: 'No such route.' });
    if (method !== allowed) {
      res.setHeader('Allow', allowed);
      sendJson(res, 405, { error: { code: 'INVALID_INPUT', message: `Use ${allowed} for ${route}.` } });
      return 405;
    }
    if (closing) return sendError(res, { code: 'CANCELLED', message: 'The service is stopping.' });
    if (route === '/v1/model') {
      sendJson(res, 200, facts);
      return 200;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    const threshold = thresholdOf(url.searchParams.get('threshold'));
    const body = await readBody(req, maxBody);
    const p = await predictor.predict(imageOf(req.headers['content-type'], body), threshold);
    sendJson(res, 200, {
      class: p.predicted,
      confidence: p.confidence,
      probabilities: Object.fromEntries(model.classes.map((c, i) => [c, p.probabilities[i] as number])),
      uncertain: p.uncertain,
      threshold,
      modelId: model.id,
      backbone: model.backboneId,
    });
    return 200;
  }

  /** The route a request names, or '-': an unknown path is never logged, a client may put a file name in it. */
  function routeOf(req: http.IncomingMessage): string {
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      return ROUTES[path] ? path : '-';
    } catch {
      return '-';
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const route = routeOf(req);
    let status: number;
    try {
      status = await answer(req, res, route);
    } catch (e) {
      const error: ErrorData = toErrorData(e);
      // A body refused before it was read must not be read as the next request on this connection.
      const close: Record<string, string> = error.code === 'IMAGE_TOO_LARGE' ? { Connection: 'close' } : {};
      if (res.headersSent) {
        res.destroy();
        status = 500;
      } else status = sendError(res, error, close);
    }
    counts.requests++;
    if (status >= 400) counts.failed++;
    const ms = (performance.now() - started).toFixed(1);
    log(`${new Date().toISOString()} ${req.method ?? '-'} ${route} ${status} ${ms} ms`);
  }

  const server = http.createServer((req, res) => {
    const done = handle(req, res)
      .catch(() => {
        res.destroy(); // a failed log write must not take the service down
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  });

  let address: AddressInfo;
  try {
    address = await listen(server, port, host);
  } catch (e) {
    await release();
    throw e;
  }
  const bound = { host, port: address.port };
  const tokenFile = options.tokenFile ?? defaultTokenFile(bound.port);
  const audited = { modelId: model.id, host, port: bound.port };
  try {
    try {
      writeTokenFile(tokenFile, token);
    } catch (e) {
      throw new FewShotError(
        'INVALID_INPUT',
        `Cannot write the token file ${tokenFile}: ${(e as Error).message}`,
      );
    }
    // No request can carry the token before this returns: a start that cannot be recorded never served.
    await recordServeEvent(file, 'serve.start', audited);
  } catch (e) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    removeTokenFile(tokenFile, token);
    await release();
    throw e;
  }

  const stats = (): ServeStats => ({ ...counts, batches: predictor.batches, images: predictor.images });
  let closed: Promise<ServeStats> | null = null;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${bound.port}`,
    host,
    port: bound.port,
    token,
    tokenFile,
    model: facts,
    stats,
    close: (reason = 'stopped') =>
      (closed ??= (async () => {
        closing = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Requests in flight get their answers; a client that keeps its connection is then cut.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...inFlight]),
          new Promise((resolve) => (timer = setTimeout(resolve, 10_000))),
        ]);
        clearTimeout(timer);
        server.closeAllConnections();
        await stopped;
        removeTokenFile(tokenFile, token);
        await release();
        const s = stats();
        await recordServeEvent(file, 'serve.stop', { ...audited, reason, requests: s.requests }, 30_000);
        return s;
      })()),
  };
}
