// `npm run models:bundle`: torchvision's checkpoint, from a file or fetched over HTTP with its hash
// checked, becomes the installer's bundled ResNet18. The fetch is tested against a local server on
// 127.0.0.1: a good download, a wrong hash and a truncated body; a refused file leaves nothing behind.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { bundleBackbone, bundledModelsDir } from '../../src/main/engine/backbones/bundle.ts';
import { listBackbones } from '../../src/main/engine/backbones/registry.ts';
import { REPO, tmpDir } from '../helpers/env.ts';
import { needsTorch, PYTHON } from '../helpers/torch.ts';

let pth = '';
let bytes: Buffer = Buffer.alloc(0);
let prefix = '';
let server: http.Server;
let base = '';

function resources(): string {
  const dir = path.join(tmpDir('fsl-bundle-res-'), 'models');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(REPO, 'resources', 'models', 'manifest.json'), path.join(dir, 'manifest.json'));
  return dir;
}

before(async () => {
  if (needsTorch) return;
  pth = path.join(tmpDir('fsl-bundle-src-'), 'resnet18-seeded.pth');
  const r = spawnSync(
    PYTHON,
    [
      '-c',
      'import sys, torch, torchvision; torch.manual_seed(1); torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])',
      pth,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  bytes = fs.readFileSync(pth);
  prefix = crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 8);
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === `/models/resnet18-${prefix}.pth` || url === '/models/resnet18-deadbeef.pth') {
      res.writeHead(200, { 'content-length': bytes.length });
      res.end(bytes);
    } else if (url === `/cut/resnet18-${prefix}.pth`) {
      res.writeHead(200, { 'content-length': bytes.length });
      res.write(bytes.subarray(0, bytes.length >> 1), () => res.destroy());
    } else if (url === `/moved/resnet18-${prefix}.pth`) {
      res.writeHead(302, { location: `/models/resnet18-${prefix}.pth` });
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => server?.close());

test(
  '--fetch: a good download is converted into the bundled models and listed as built in',
  { skip: needsTorch },
  async () => {
    const res = resources();
    const entry = await bundleBackbone({ url: `${base}/models/resnet18-${prefix}.pth`, resources: res });
    assert.deepEqual(
      [entry.id, entry.architecture, entry.output.dim],
      ['resnet18-imagenet', 'resnet18', 512],
    );
    assert.equal(entry.license, 'BSD-3-Clause (torchvision)', 'the tracked entry’s licence is kept');
    assert.ok(entry.origin?.sha256.startsWith(prefix));
    assert.ok(fs.existsSync(path.join(bundledModelsDir(res), 'resnet18-imagenet', 'model.onnx')));
    const saved = {
      resources: process.env.FEWSHOT_RESOURCES,
      extra: process.env.FEWSHOT_MODELS,
      user: process.env.FEWSHOT_USER_MODELS,
    };
    try {
      process.env.FEWSHOT_RESOURCES = path.dirname(res);
      process.env.FEWSHOT_MODELS = '';
      process.env.FEWSHOT_USER_MODELS = tmpDir('fsl-bundle-user-');
      const r18 = listBackbones().find((m) => m.id === 'resnet18-imagenet');
      assert.deepEqual([r18?.present, r18?.source], [true, 'builtin']);
    } finally {
      for (const [k, v] of [
        ['FEWSHOT_RESOURCES', saved.resources],
        ['FEWSHOT_MODELS', saved.extra],
        ['FEWSHOT_USER_MODELS', saved.user],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  },
);

test(
  '--fetch refuses a wrong hash, a truncated body and a missing file; nothing is bundled',
  { skip: needsTorch },
  async () => {
    const cases: [string, RegExp][] = [
      ['/models/resnet18-deadbeef.pth', /should have a SHA-256 starting deadbeef/],
      [`/cut/resnet18-${prefix}.pth`, /truncated|broke off/],
      ['/models/resnet18-00000000.pth', /HTTP 404/],
      ['/models/resnet18.pth', /carries no hash/],
    ];
    for (const [url, message] of cases) {
      const res = resources();
      await assert.rejects(bundleBackbone({ url: `${base}${url}`, resources: res }), message, url);
      assert.ok(!fs.existsSync(bundledModelsDir(res)), `${url}: nothing bundled`);
    }
  },
);

test(
  '--pth: a local checkpoint is bundled; a redirect is followed when fetching',
  { skip: needsTorch },
  async () => {
    const res = resources();
    const entry = await bundleBackbone({ pth, resources: res });
    assert.equal(entry.id, 'resnet18-imagenet');
    assert.match(
      entry.pretraining ?? '',
      /not verified/,
      'a file not published by torchvision is not called ImageNet',
    );
    // The CLI entry point gives the same result and a usage line without arguments.
    const cli = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'scripts', 'models-bundle.ts')],
      {
        encoding: 'utf8',
        cwd: REPO,
      },
    );
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, /usage: npm run models:bundle/);
  },
);
