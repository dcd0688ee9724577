// Read-only storage (a locked share, a write-protected stick): a clear error before anything is written,
// for a project file, its folder, creating a project there, or a batch's output folder.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, REPO, SHARED_MODELS, SQUEEZENET, needsShared, tmpDir, unprivileged } from '../helpers/env.ts';

const prefix = unprivileged();

function fewshotEnv(home: string, env: Record<string, string>, ...args: string[]) {
  const argv = [...(prefix ?? []), process.execPath, path.join(REPO, 'bin', 'fewshot.mjs'), ...args];
  return spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    env: { ...process.env, HOME: home, ...env },
  });
}

function fewshot(home: string, ...args: string[]) {
  return fewshotEnv(home, {}, ...args);
}

test(
  'a read-only project file or folder is PROJECT_READONLY, with no stack trace and no change',
  { skip: prefix === null ? 'running as root without setpriv' : false },
  () => {
    const dir = tmpDir('fsl-readonly-');
    const file = path.join(dir, 'lab.fsl');
    Project.create(file).close();
    const before = fs.readFileSync(file);
    fs.chmodSync(file, 0o444);
    fs.chmodSync(dir, 0o777);
    // A command that writes (`trained` only reads, and works on read-only storage).
    const fileRo = fewshot(dir, 'project', 'settings', file);
    assert.notEqual(fileRo.status, 0);
    assert.match(
      fileRo.stderr,
      /^fewshot: PROJECT_READONLY: lab\.fsl cannot be opened for writing \(the file is read-only\)/,
    );
    assert.doesNotMatch(fileRo.stderr, /\n\s+at /, 'no stack trace');

    fs.chmodSync(file, 0o666);
    fs.chmodSync(dir, 0o555);
    const folderRo = fewshot(tmpDir(), 'project', 'settings', file);
    assert.match(folderRo.stderr, /PROJECT_READONLY: .*its folder is read-only/);
    const create = fewshot(tmpDir(), 'project', 'create', path.join(dir, 'new.fsl'));
    assert.match(create.stderr, /PROJECT_READONLY/);
    fs.chmodSync(dir, 0o755);
    assert.ok(fs.readFileSync(file).equals(before), 'the file was not changed');
    assert.ok(!fs.existsSync(`${file}-wal`));
  },
);

test(
  'a batch whose CSV folder is read-only is refused before any image is classified',
  { skip: prefix === null ? 'running as root without setpriv' : needsShared },
  () => {
    const dir = tmpDir('fsl-readonly-batch-');
    fs.chmodSync(dir, 0o777);
    const images = path.join(dir, 'images');
    for (const cls of ['WBC', 'RBC']) {
      fs.mkdirSync(path.join(images, cls), { recursive: true });
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 4))
        fs.copyFileSync(path.join(BCCD, cls, f), path.join(images, cls, f));
    }
    fs.chmodSync(images, 0o755);
    const file = path.join(dir, 'lab.fsl');
    const env = { FEWSHOT_MODELS: SHARED_MODELS, FEWSHOT_USER_MODELS: dir };
    assert.equal(fewshot(dir, 'project', 'create', file).status, 0);
    assert.equal(fewshot(dir, 'import', file, images).status, 0);
    const trained = fewshotEnv(
      dir,
      env,
      'train',
      file,
      '--backbone',
      SQUEEZENET,
      '--strategy',
      'linear',
      '--json',
    );
    assert.equal(trained.status, 0, trained.stderr);
    const modelId = (JSON.parse(trained.stdout) as { modelId: string }).modelId;
    const locked = path.join(dir, 'locked');
    fs.mkdirSync(locked, { mode: 0o555 });
    fs.chmodSync(locked, 0o555);
    const r = fewshotEnv(
      dir,
      env,
      'classify',
      file,
      '--model',
      modelId,
      images,
      '--out',
      path.join(locked, 'out.csv'),
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /INVALID_INPUT: Cannot write the CSV to .*locked.* is read-only/);
    const p = Project.open(file, { readonly: true });
    assert.equal(p.db.prepare('SELECT count(*) FROM predictions').pluck().get(), 0, 'nothing was classified');
    p.close();
  },
);
