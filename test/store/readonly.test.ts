// A project on read-only storage (a locked share, a write-protected stick): a clear PROJECT_READONLY
// before anything is written, for a read-only file, a read-only folder, or creating a project there.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Project } from '../../src/main/store/project.ts';
import { REPO, tmpDir, unprivileged } from '../helpers/env.ts';

const prefix = unprivileged();

function fewshot(home: string, ...args: string[]) {
  const argv = [...(prefix ?? []), process.execPath, path.join(REPO, 'bin', 'fewshot.mjs'), ...args];
  return spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    env: { ...process.env, HOME: home },
  });
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
    const fileRo = fewshot(dir, 'trained', file);
    assert.notEqual(fileRo.status, 0);
    assert.match(
      fileRo.stderr,
      /^fewshot: PROJECT_READONLY: lab\.fsl cannot be opened for writing \(the file is read-only\)/,
    );
    assert.doesNotMatch(fileRo.stderr, /\n\s+at /, 'no stack trace');

    fs.chmodSync(file, 0o666);
    fs.chmodSync(dir, 0o555);
    const folderRo = fewshot(tmpDir(), 'trained', file);
    assert.match(folderRo.stderr, /PROJECT_READONLY: .*its folder is read-only/);
    const create = fewshot(tmpDir(), 'project', 'create', path.join(dir, 'new.fsl'));
    assert.match(create.stderr, /PROJECT_READONLY/);
    fs.chmodSync(dir, 0o755);
    assert.ok(fs.readFileSync(file).equals(before), 'the file was not changed');
    assert.ok(!fs.existsSync(`${file}-wal`));
  },
);
