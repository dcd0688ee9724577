// A project or an import folder that is not there is NOT_FOUND, naming the missing folder by its absolute
// path; never PROJECT_READONLY, which would send the user looking for permissions.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { Project } from '../../src/main/store/project.ts';
import { FewShotError } from '../../src/shared/errors.ts';
import { tmpDir } from '../helpers/env.ts';

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FewShotError, String(e));
    return { code: e.code, message: e.message };
  }
  assert.fail('expected an error');
}

test('creating a project in a folder that does not exist is NOT_FOUND naming the folder', () => {
  const missing = path.join(tmpDir('fsl-missing-'), 'no', 'such');
  const e = codeOf(() => Project.create(path.join(missing, 'lab.fsl')));
  assert.equal(e.code, 'NOT_FOUND');
  assert.ok(e.message.includes(missing), e.message);
  assert.ok(!fs.existsSync(missing));
});

test('importing a folder that does not exist is NOT_FOUND with its absolute path', async () => {
  const dir = tmpDir('fsl-missing-import-');
  const project = Project.create(path.join(dir, 'lab.fsl'));
  try {
    const missing = path.join(dir, 'gone');
    await assert.rejects(importFolder(project, missing), (e: unknown) => {
      assert.ok(e instanceof FewShotError);
      assert.equal(e.code, 'NOT_FOUND');
      assert.ok(e.message.includes(missing), e.message);
      return true;
    });
  } finally {
    project.close();
  }
});
