// `fewshot serve` as a process: it prints the bound address and the token, answers a prediction, and
// stops cleanly on SIGTERM with the stop in the project's audit trail.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { test } from 'node:test';
import { Project } from '../../src/main/store/project.ts';
import { REPO, SHARED_MODELS, needsShared, tmpDir } from '../helpers/env.ts';
import { BCCD_CLASSES, servedModel } from '../helpers/served-model.ts';

const BIN = path.join(REPO, 'bin', 'fewshot.mjs');

test(
  'fewshot serve --port 0 prints its URL and token, predicts, and stops on SIGTERM',
  { skip: needsShared },
  async () => {
    const fx = await servedModel(6);
    const dataDir = tmpDir('fsl-serve-cli-home-');
    const child = spawn(process.execPath, [BIN, 'serve', fx.file, '--model', fx.modelId, '--port', '0'], {
      env: { ...process.env, FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (stderr += s));
    const stdout: string[] = [];
    try {
      // The banner: the bound address, then the token on a line of its own.
      const banner = await new Promise<{ url: string; token: string; tokenFile: string }>(
        (resolve, reject) => {
          const found: Record<string, string> = {};
          const lines = readline.createInterface({ input: child.stdout });
          lines.on('line', (line) => {
            stdout.push(line);
            const m = /^(listening|token|token file): (\S+)/.exec(line);
            if (m) found[m[1] as string] = m[2] as string;
            if (found.listening && found.token && found['token file'])
              resolve({ url: found.listening, token: found.token, tokenFile: found['token file'] });
          });
          void exited.then((code) => reject(new Error(`fewshot serve exited (${code}): ${stderr}`)));
        },
      );
      assert.match(banner.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(banner.url, 'http://127.0.0.1:0');
      assert.match(banner.token, /^[0-9a-f]{64}$/);
      assert.equal(banner.tokenFile, path.join(dataDir, 'serve', `${new URL(banner.url).port}.token`));
      assert.equal(fs.readFileSync(banner.tokenFile, 'utf8').trim(), banner.token);
      assert.equal(fs.statSync(banner.tokenFile).mode & 0o777, 0o600);

      const image = fx.unseen[0] as string;
      const r = await fetch(`${banner.url}/v1/predict`, {
        method: 'POST',
        body: fs.readFileSync(image),
        headers: { Authorization: `Bearer ${banner.token}`, 'Content-Type': 'image/jpeg' },
      });
      assert.equal(r.status, 200);
      const p = (await r.json()) as { class: string; probabilities: Record<string, number>; modelId: string };
      assert.ok(BCCD_CLASSES.includes(p.class as never));
      assert.equal(p.modelId, fx.modelId);
      assert.ok(Math.abs(Object.values(p.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-6);
      assert.equal((await fetch(`${banner.url}/v1/model`)).status, 401);

      // Serving holds no write lock: another program can open the project for writing meanwhile.
      const writer = Project.open(fx.file, { check: true });
      writer.close();

      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.ok(
        stdout.some((l) => /^Stopped \(SIGTERM\): 2 requests answered, 1 with an error\.$/.test(l)),
        stdout.join('\n'),
      );
      assert.equal(fs.existsSync(banner.tokenFile), false);
      // The request log (stderr): method, route, status, duration; no file name, no token.
      const logLines = stderr.split('\n').filter((l) => /^\d{4}-/.test(l));
      assert.equal(logLines.length, 2, stderr);
      for (const line of logLines) {
        assert.match(line, / (POST \/v1\/predict 200|GET \/v1\/model 401) [\d.]+ ms$/);
        assert.ok(!line.includes(banner.token) && !line.includes(path.basename(image)));
      }
      assert.ok(!stderr.includes(banner.token));

      const project = Project.open(fx.file, { readonly: true });
      try {
        const serve = project.audit.list().filter((e) => e.action.startsWith('serve.'));
        assert.deepEqual(
          serve.map((e) => [e.action, e.details.host, e.details.port, e.details.modelId]),
          [
            ['serve.start', '127.0.0.1', Number(new URL(banner.url).port), fx.modelId],
            ['serve.stop', '127.0.0.1', Number(new URL(banner.url).port), fx.modelId],
          ],
        );
        assert.equal(serve[1]?.details.reason, 'SIGTERM');
      } finally {
        project.close();
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  },
);

test(
  'fewshot serve does not start while another program writes the project, and records nothing',
  { skip: needsShared },
  async () => {
    const fx = await servedModel(4);
    const writer = Project.open(fx.file, { check: true });
    try {
      const r = spawnSync(process.execPath, [BIN, 'serve', fx.file, '--model', fx.modelId, '--port', '0'], {
        encoding: 'utf8',
        env: {
          ...process.env,
          FEWSHOT_MODELS: SHARED_MODELS,
          FEWSHOT_DATA_DIR: tmpDir('fsl-serve-cli-home-'),
        },
        timeout: 60_000,
      });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^fewshot: PROJECT_IN_USE: /m);
      assert.doesNotMatch(r.stdout, /token:/);
      assert.deepEqual(
        writer.audit.list().filter((e) => e.action.startsWith('serve.')),
        [],
      );
    } finally {
      writer.close();
    }
  },
);
