// The browser host's file browser, through the contract: its roots, a folder's listing (folders first,
// extension filter, hidden names), and refusals — relative paths, paths outside the roots, links that lead
// out of them — with typed errors.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { ErrorData } from '../../src/shared/errors.ts';
import type { FolderListing } from '../../src/shared/files.ts';
import { testBackend, type TestBackend } from '../helpers/backend.ts';
import { tmpDir } from '../helpers/env.ts';

let t: TestBackend;
let home: string;
let extra: string;
let outside: string;
const saved = { HOME: process.env.HOME, FEWSHOT_BROWSE_ROOTS: process.env.FEWSHOT_BROWSE_ROOTS };

before(() => {
  home = fs.realpathSync(tmpDir('fsl-files-home-'));
  extra = fs.realpathSync(tmpDir('fsl-files-root-'));
  outside = fs.realpathSync(tmpDir('fsl-files-outside-'));
  process.env.HOME = home;
  process.env.FEWSHOT_BROWSE_ROOTS = [extra, path.join(extra, 'no-such-root')].join(path.delimiter);
  fs.mkdirSync(path.join(extra, 'models', 'resnet'), { recursive: true });
  fs.mkdirSync(path.join(extra, 'Zeta'));
  fs.mkdirSync(path.join(extra, 'alpha'));
  fs.mkdirSync(path.join(extra, '.hidden-folder'));
  fs.writeFileSync(path.join(extra, 'resnet18-f37072fd.pth'), Buffer.alloc(1234));
  fs.writeFileSync(path.join(extra, 'model.ONNX'), 'x');
  fs.writeFileSync(path.join(extra, 'model.json'), '{}');
  fs.writeFileSync(path.join(extra, 'notes.txt'), 'hello');
  fs.writeFileSync(path.join(extra, '.secret.onnx'), 'x');
  fs.writeFileSync(path.join(outside, 'private.onnx'), 'x');
  fs.symlinkSync(outside, path.join(extra, 'escape'));
  fs.symlinkSync(path.join(outside, 'private.onnx'), path.join(extra, 'escape.onnx'));
  fs.symlinkSync(path.join(extra, 'models'), path.join(extra, 'models-link'));
  fs.symlinkSync(path.join(extra, 'gone'), path.join(extra, 'dangling'));
  t = testBackend();
});

after(async () => {
  await t.close();
  for (const [k, v] of Object.entries(saved))
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
});

async function list(input: Record<string, unknown>): Promise<FolderListing> {
  return t.call<FolderListing>('files.list', input);
}

async function refused(input: Record<string, unknown>): Promise<ErrorData> {
  const r = await t.invoke('files.list', input);
  if (r.ok) assert.fail(`expected a refusal for ${JSON.stringify(input)}`);
  return r.error;
}

test('with no path it lists the home folder; the roots are home, existing mounts and the extra roots', async () => {
  const l = await list({ kind: 'folder' });
  assert.equal(l.path, home);
  assert.equal(l.parent, null, 'a root has no parent to go up to');
  assert.deepEqual(l.crumbs, [{ name: 'Home', path: home }]);
  assert.ok(
    l.roots.some((r) => r.path === extra && r.label === path.basename(extra)),
    'named by its folder',
  );
  assert.deepEqual(l.roots[0], { label: 'Home', path: home });
  assert.ok(l.roots.some((r) => r.path === extra));
  for (const r of l.roots) assert.ok(fs.statSync(r.path).isDirectory(), `${r.path} exists`);
  assert.ok(!l.roots.some((r) => r.path.endsWith('no-such-root')), 'a missing root is left out');
});

test('a folder lists folders first, then files, by name; hidden names only when asked for', async () => {
  const l = await list({ path: extra, kind: 'file' });
  assert.deepEqual(
    l.entries.map((e) => `${e.kind}:${e.name}`),
    [
      'folder:alpha',
      'folder:models',
      'folder:models-link',
      'folder:Zeta',
      'file:model.json',
      'file:model.ONNX',
      'file:notes.txt',
      'file:resnet18-f37072fd.pth',
    ],
  );
  const pth = l.entries.find((e) => e.name === 'resnet18-f37072fd.pth');
  assert.equal(pth?.size, 1234);
  assert.ok(!Number.isNaN(Date.parse(pth?.mtime ?? '')));
  assert.equal(l.entries.find((e) => e.name === 'alpha')?.size, null);
  assert.equal(l.separator, path.sep);
  assert.equal(l.truncated, 0);

  const hidden = await list({ path: extra, kind: 'file', showHidden: true });
  const names = hidden.entries.map((e) => e.name);
  assert.ok(names.includes('.hidden-folder') && names.includes('.secret.onnx'));
});

test('the extension filter keeps matching files (any case) and every folder; kind folder lists folders only', async () => {
  const l = await list({ path: extra, kind: 'file', extensions: ['.pth', 'onnx', '.JSON'] });
  assert.deepEqual(
    l.entries.filter((e) => e.kind === 'file').map((e) => e.name),
    ['model.json', 'model.ONNX', 'resnet18-f37072fd.pth'],
  );
  assert.equal(l.entries.filter((e) => e.kind === 'folder').length, 4);
  const folders = await list({ path: extra, kind: 'folder', extensions: ['.pth'] });
  assert.ok(folders.entries.every((e) => e.kind === 'folder'));
  const bad = await refused({ path: extra, kind: 'file', extensions: ['../x'] });
  assert.equal(bad.code, 'INVALID_INPUT');
});

test('a subfolder has its parent and breadcrumb; a file lists its folder with the file selected', async () => {
  const l = await list({ path: path.join(extra, 'models', 'resnet'), kind: 'folder' });
  assert.equal(l.parent, path.join(extra, 'models'));
  assert.deepEqual(
    l.crumbs.map((c) => c.path),
    [extra, path.join(extra, 'models'), path.join(extra, 'models', 'resnet')],
  );
  const f = await list({ path: path.join(extra, 'resnet18-f37072fd.pth'), kind: 'file' });
  assert.equal(f.path, extra);
  assert.equal(f.selected, 'resnet18-f37072fd.pth');
  // A link inside the roots to a folder inside them is followed, and named by where it leads.
  const viaLink = await list({ path: path.join(extra, 'models-link'), kind: 'folder' });
  assert.equal(viaLink.path, path.join(extra, 'models'));
});

test('relative paths, paths outside the roots and links that lead out of them are refused', async () => {
  assert.equal((await refused({ path: 'models', kind: 'folder' })).code, 'INVALID_INPUT');
  assert.equal((await refused({ path: '', kind: 'folder' })).code, 'INVALID_INPUT');
  for (const p of [outside, '/', path.join(extra, '..'), `${extra}${path.sep}..${path.sep}..`]) {
    const e = await refused({ path: p, kind: 'folder' });
    assert.equal(e.code, 'PATH_NOT_ALLOWED', p);
  }
  // Through a link inside a root: the folder and the file behind it are outside.
  for (const p of [
    path.join(extra, 'escape'),
    path.join(extra, 'escape', 'private.onnx'),
    path.join(extra, 'escape.onnx'),
  ]) {
    const e = await refused({ path: p, kind: 'file' });
    assert.equal(e.code, 'PATH_NOT_ALLOWED', p);
    assert.match(e.message, /outside the folders this app may show/);
  }
  // Neither link is listed, nor is a dangling one.
  const names = (await list({ path: extra, kind: 'file' })).entries.map((e) => e.name);
  for (const n of ['escape', 'escape.onnx', 'dangling']) assert.ok(!names.includes(n), n);
});

test('a missing folder is NOT_FOUND, naming it', async () => {
  const missing = path.join(extra, 'models', 'not-there');
  const e = await refused({ path: missing, kind: 'folder' });
  assert.equal(e.code, 'NOT_FOUND');
  assert.ok(e.message.includes(missing), e.message);
  assert.equal((await refused({ path: path.join(extra, 'dangling'), kind: 'folder' })).code, 'NOT_FOUND');
});
