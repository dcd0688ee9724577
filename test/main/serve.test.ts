// The prediction service on a real project and model over real HTTP on loopback: the same predictions as
// batch classification, the token, typed errors for bad files, a crashing decoder failing one request
// only, the model's facts, the token file's mode, the audit trail and a log that names no file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DecodePool } from '../../src/main/engine/image/decode-pool.ts';
import { classifyBatch } from '../../src/main/services/batch.ts';
import { openProject } from '../../src/main/services/projects.ts';
import { startPredictionService, type PredictionService } from '../../src/main/services/serve/server.ts';
import type { Project } from '../../src/main/store/project.ts';
import { CRASH_MARKER } from '../helpers/decode-faults.ts';
import { REPO, needsShared, tmpDir } from '../helpers/env.ts';
import { solidPng } from '../helpers/images.ts';
import { BCCD_CLASSES, servedModel, type ServedModel } from '../helpers/served-model.ts';

const FAULTY = path.join(REPO, 'test', 'helpers', 'faulty-decode-worker.ts');
/** A name that must never reach the log. */
const SECRET_NAME = 'DOE^JANE-MRN123456.jpg';

let fx: ServedModel;
let project: Project;
let pool: DecodePool;
let service: PredictionService;
const logs: string[] = [];

before(async () => {
  if (needsShared) return;
  process.env.FEWSHOT_DATA_DIR = tmpDir('fsl-serve-home-');
  fx = await servedModel();
  project = openProject(fx.file);
  pool = new DecodePool({ workerScript: FAULTY, timeoutMs: 20_000 });
  service = await startPredictionService(fx.file, {
    modelId: fx.modelId.slice(0, 8),
    port: 0,
    decodePool: pool,
    log: (line) => logs.push(line),
  });
});

after(async () => {
  if (needsShared) return;
  await service.close();
  pool.close();
  project.close();
});

function auth(token = service.token): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

interface PredictBody {
  class: string;
  confidence: number;
  probabilities: Record<string, number>;
  uncertain: boolean;
  threshold: number;
  modelId: string;
  backbone: string;
}

async function post(
  body: BodyInit,
  headers: Record<string, string> = auth(),
  query = '',
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${service.url}/v1/predict${query}`, { method: 'POST', body, headers });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

function errorOf(json: Record<string, unknown>): { code: string; message: string } {
  return json.error as { code: string; message: string };
}

test(
  'a prediction, raw or multipart, equals batch classification of the same file',
  { skip: needsShared },
  async () => {
    const file = fx.unseen[0] as string;
    const bytes = fs.readFileSync(file);

    // The app's own batch classification of that file.
    const folder = tmpDir('fsl-serve-batch-');
    fs.copyFileSync(file, path.join(folder, path.basename(file)));
    const summary = await classifyBatch(project, {
      modelId: fx.modelId,
      folder,
      out: path.join(tmpDir(), 'out.csv'),
      minConfidence: 0.5,
    });
    const [row] = [...project.batches.iterate(summary.runId)];
    assert.ok(row?.probabilities && row.predicted);

    const raw = await post(bytes, { ...auth(), 'Content-Type': 'image/jpeg' });
    assert.equal(raw.status, 200, JSON.stringify(raw.json));
    const r = raw.json as unknown as PredictBody;
    assert.equal(r.class, row.predicted);
    assert.deepEqual(Object.keys(r.probabilities), [...BCCD_CLASSES]);
    // Both ran the image alone (a batch of one) through the same decode, runtime and head: the same numbers.
    BCCD_CLASSES.forEach((c, i) => assert.equal(r.probabilities[c], row.probabilities?.[i], c));
    assert.equal(r.uncertain, row.status === 'uncertain');
    assert.equal(r.modelId, fx.modelId);
    assert.equal(r.backbone, 'squeezenet1_1-imagenet');
    assert.equal(r.threshold, 0.5);

    const form = new FormData();
    form.append('note', 'first a text field');
    form.append('image', new Blob([bytes], { type: 'image/jpeg' }), SECRET_NAME);
    const multi = await post(form);
    assert.equal(multi.status, 200, JSON.stringify(multi.json));
    assert.deepEqual(multi.json, raw.json);

    // Any content type, or none, is the image itself.
    const untyped = await post(bytes, { ...auth(), 'Content-Type': 'application/octet-stream' });
    assert.deepEqual(untyped.json, raw.json);
  },
);

test(
  '?threshold= overrides the uncertainty threshold; a bad one is INVALID_INPUT',
  { skip: needsShared },
  async () => {
    const bytes = fs.readFileSync(fx.unseen[2] as string);
    for (const t of [0, 0.5, 1]) {
      const r = (await post(bytes, auth(), `?threshold=${t}`)).json as unknown as PredictBody;
      assert.equal(r.threshold, t);
      assert.equal(r.uncertain, r.confidence < t);
    }
    assert.equal(
      ((await post(bytes, auth(), '?threshold=1')).json as unknown as PredictBody).uncertain,
      true,
    );
    for (const bad of ['2', '-0.1', 'abc', '']) {
      const r = await post(bytes, auth(), `?threshold=${bad}`);
      assert.equal(r.status, 400);
      assert.equal(errorOf(r.json).code, 'INVALID_INPUT');
    }
  },
);

test(
  'without the token, or with a wrong one, every route but /healthz is 401',
  { skip: needsShared },
  async () => {
    const bytes = fs.readFileSync(fx.unseen[0] as string);
    for (const headers of [
      {},
      auth('0'.repeat(service.token.length)),
      auth('short'),
      { Authorization: service.token },
    ]) {
      const r = await post(bytes, headers);
      assert.equal(r.status, 401);
      assert.equal(errorOf(r.json).code, 'UNAUTHORIZED');
      const m = await fetch(`${service.url}/v1/model`, { headers });
      assert.equal(m.status, 401);
      assert.equal(m.headers.get('www-authenticate'), 'Bearer');
    }
    const health = await fetch(`${service.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    // The scheme is case-insensitive, as HTTP says.
    assert.equal((await post(bytes, { Authorization: `bearer ${service.token}` })).status, 200);
  },
);

test('bad files get their typed error and status', { skip: needsShared }, async () => {
  const jpeg = fs.readFileSync(fx.unseen[0] as string);
  const cases: [string, BodyInit, number, string][] = [
    ['text', 'this is not an image', 415, 'NOT_AN_IMAGE'],
    ['empty', new Uint8Array(0), 400, 'EMPTY_FILE'],
    ['truncated JPEG', jpeg.subarray(0, jpeg.length >> 1), 422, 'CORRUPT_IMAGE'],
    ['BMP', Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]), 415, 'UNSUPPORTED_IMAGE'],
    ['over 64 MiB', Buffer.alloc(64 * 1024 * 1024 + 1, 0xff), 413, 'IMAGE_TOO_LARGE'],
  ];
  for (const [what, body, status, code] of cases) {
    const r = await post(body);
    assert.equal(r.status, status, what);
    assert.equal(errorOf(r.json).code, code, what);
    assert.equal(typeof errorOf(r.json).message, 'string', what);
  }
  // A chunked body (no Content-Length) is cut off at the limit too.
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent++ < 1100) c.enqueue(new Uint8Array(64 * 1024));
      else c.close();
    },
  });
  const chunked = await fetch(`${service.url}/v1/predict`, {
    method: 'POST',
    body: stream,
    headers: auth(),
    duplex: 'half',
  } as RequestInit);
  assert.equal(chunked.status, 413);
  assert.equal(errorOf((await chunked.json()) as Record<string, unknown>).code, 'IMAGE_TOO_LARGE');
  // A form without a file part says so.
  const form = new FormData();
  form.append('image', 'a text field, not a file');
  const noFile = await post(form);
  assert.equal(noFile.status, 400);
  assert.equal(errorOf(noFile.json).code, 'INVALID_INPUT');
});

test(
  'a decoder that crashes fails that request only; the next one succeeds',
  { skip: needsShared },
  async () => {
    const crashes = pool.crashes;
    const hostile = Buffer.concat([await solidPng(9, 9), Buffer.from(CRASH_MARKER)]);
    const r = await post(hostile);
    assert.equal(r.status, 422);
    assert.equal(errorOf(r.json).code, 'DECODER_CRASHED');
    assert.equal(pool.crashes, crashes + 1);
    const next = await post(fs.readFileSync(fx.unseen[1] as string));
    assert.equal(next.status, 200);
    assert.ok(BCCD_CLASSES.includes((next.json as unknown as PredictBody).class as never));
    // Concurrent requests around a crash: only the hostile one fails.
    const bodies = [0, 1, 2, 3].map((i) => fs.readFileSync(fx.unseen[i] as string));
    const all = await Promise.all([
      ...bodies.map((b) => post(b)),
      post(hostile),
      ...bodies.map((b) => post(b)),
    ]);
    assert.deepEqual(
      all.map((x) => x.status),
      [200, 200, 200, 200, 422, 200, 200, 200, 200],
    );
  },
);

test(
  'GET /v1/model gives the model card facts; unknown routes 404, wrong methods 405',
  { skip: needsShared },
  async () => {
    const r = await fetch(`${service.url}/v1/model`, { headers: auth() });
    assert.equal(r.status, 200);
    const m = (await r.json()) as Record<string, unknown> & {
      backbone: { id: string; sha256: string };
      estimate: { protocol: { kind: string }; label: string; accuracy: { mean: number } } | null;
      preprocessing: { height: number; width: number; resizeShorter: number; highBitDepth: string };
    };
    const record = project.models.get(fx.modelId);
    assert.ok(record);
    assert.equal(m.id, fx.modelId);
    assert.equal(m.name, record.name);
    assert.equal(m.strategy, 'linear');
    assert.deepEqual(m.classes, [...BCCD_CLASSES]);
    assert.deepEqual(m.backbone, { id: 'squeezenet1_1-imagenet', sha256: record.backboneSha256 });
    assert.match(m.backbone.sha256, /^[0-9a-f]{64}$/);
    assert.equal(m.temperature, record.params.temperature);
    assert.equal(typeof m.temperature, 'number');
    assert.equal(m.created, record.createdAt);
    assert.ok(m.estimate);
    assert.equal(m.estimate.protocol.kind, record.metrics?.protocol.kind);
    assert.match(m.estimate.label, /n = \d+/);
    assert.equal(m.uncertainBelow, 0.5);
    assert.deepEqual(
      [
        m.preprocessing.height,
        m.preprocessing.width,
        m.preprocessing.resizeShorter,
        m.preprocessing.highBitDepth,
      ],
      [224, 224, 256, 'full'],
    );

    const unknown = await fetch(`${service.url}/v1/predict/${encodeURIComponent(SECRET_NAME)}`, {
      method: 'POST',
      headers: auth(),
    });
    assert.equal(unknown.status, 404);
    assert.equal(errorOf((await unknown.json()) as Record<string, unknown>).code, 'NOT_FOUND');
    const wrong = await fetch(`${service.url}/v1/predict`, { headers: auth() });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    const wrong2 = await fetch(`${service.url}/v1/model`, { method: 'DELETE', headers: auth() });
    assert.equal(wrong2.status, 405);
  },
);

test(
  'the token file is the token, readable only by the user, in the data folder',
  { skip: needsShared },
  () => {
    assert.equal(
      service.tokenFile,
      path.join(process.env.FEWSHOT_DATA_DIR as string, 'serve', `${service.port}.token`),
    );
    assert.equal(fs.readFileSync(service.tokenFile, 'utf8'), `${service.token}\n`);
    assert.equal(fs.statSync(service.tokenFile).mode & 0o777, 0o600);
    assert.match(service.token, /^[0-9a-f]{64}$/);
    assert.equal(service.host, '127.0.0.1');
    assert.match(service.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  },
);

test(
  'start and stop are audited (port, host, model; no token); the log names no file',
  { skip: needsShared },
  async () => {
    // A second service on the same project: its own token and file, stopped here.
    const second = await startPredictionService(fx.file, { modelId: fx.modelId, port: 0 });
    assert.notEqual(second.token, service.token);
    const bytes = fs.readFileSync(fx.unseen[0] as string);
    const ok = await fetch(`${second.url}/v1/predict`, {
      method: 'POST',
      body: bytes,
      headers: auth(second.token),
    });
    assert.equal(ok.status, 200);
    const stats = await second.close('test');
    assert.equal(stats.requests, 1);
    assert.equal(fs.existsSync(second.tokenFile), false);
    await assert.rejects(fetch(`${second.url}/healthz`));

    const rows = project.audit.list().filter((e) => e.action.startsWith('serve.'));
    const mine = rows.filter((e) => e.details.port === second.port);
    assert.deepEqual(
      mine.map((e) => e.action),
      ['serve.start', 'serve.stop'],
    );
    for (const e of mine) {
      assert.equal(e.details.host, '127.0.0.1');
      assert.equal(e.details.modelId, fx.modelId);
    }
    assert.equal(mine[1]?.details.reason, 'test');
    assert.ok(rows.some((e) => e.action === 'serve.start' && e.details.port === service.port));
    const trail = JSON.stringify(project.audit.list());
    assert.ok(!trail.includes(service.token) && !trail.includes(second.token));
    assert.equal(project.audit.verify(), null);

    assert.ok(logs.length > 20);
    for (const line of logs) {
      assert.match(
        line,
        /^\d{4}-\d\d-\d\dT[\d:.]+Z (GET|POST|DELETE) (\/healthz|\/v1\/model|\/v1\/predict|-) \d{3} [\d.]+ ms$/,
      );
      assert.ok(!line.includes(service.token));
      assert.ok(!/DOE|MRN|BloodImage|\.jpg/i.test(line), line);
    }
  },
);
