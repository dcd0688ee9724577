// The desktop app's file dialog, in the parts that run without Electron: the preload adds pickPath and
// nothing else, and a pick request becomes the native dialog's options (open a file with a filter, open a
// folder, save a new file), with a cancelled dialog answering null.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chosenPath, dialogPlan } from '../../src/main/electron/dialog-options.ts';
import { buildApi } from '../../src/preload/api.ts';
import { CHANNELS } from '../../src/shared/contract.ts';
import { PickRequestSchema } from '../../src/shared/files.ts';

test('with a dialog, the preload exposes the channels, onJobEvent and pickPath only', async () => {
  const picked: unknown[] = [];
  const api = buildApi(
    async () => ({ ok: true, value: null }),
    () => () => undefined,
    async (r) => {
      picked.push(r);
      return { path: '/home/lab/resnet18.pth' };
    },
  );
  assert.deepEqual(Object.keys(api).sort(), [...CHANNELS, 'onJobEvent', 'pickPath'].sort());
  assert.ok(Object.isFrozen(api));
  const r = await (api.pickPath as (r: unknown) => Promise<unknown>)({ kind: 'file' });
  assert.deepEqual(r, { path: '/home/lab/resnet18.pth' });
  assert.deepEqual(picked, [{ kind: 'file' }]);
});

test('a file request opens one file, filtered by its extensions with "All files" beside them', () => {
  const req = PickRequestSchema.parse({
    kind: 'file',
    title: 'Add a backbone',
    extensions: ['.pth', 'ONNX', '.json'],
    filterName: 'Backbones',
    defaultPath: '/home/lab',
  });
  assert.deepEqual(dialogPlan(req), {
    type: 'open',
    options: {
      title: 'Add a backbone',
      defaultPath: '/home/lab',
      filters: [
        { name: 'Backbones', extensions: ['pth', 'onnx', 'json'] },
        { name: 'All files', extensions: ['*'] },
      ],
      properties: ['openFile', 'dontAddToRecent'],
    },
  });
});

test('a folder request opens a folder; a save request asks for a new file name', () => {
  assert.deepEqual(dialogPlan(PickRequestSchema.parse({ kind: 'folder' })), {
    type: 'open',
    options: { properties: ['openDirectory', 'createDirectory', 'dontAddToRecent'] },
  });
  const save = dialogPlan(
    PickRequestSchema.parse({ kind: 'file', purpose: 'save', extensions: ['.fsl'], filterName: 'Projects' }),
  );
  assert.equal(save.type, 'save');
  assert.deepEqual(save.options.properties, ['createDirectory']);
  assert.deepEqual(save.options.filters?.[0], { name: 'Projects', extensions: ['fsl'] });
});

test('the chosen path comes from either dialog; a cancelled one is null; bad requests are refused', () => {
  assert.deepEqual(chosenPath({ canceled: false, filePaths: ['/a/b.onnx'] }), { path: '/a/b.onnx' });
  assert.deepEqual(chosenPath({ canceled: false, filePath: '/a/new.fsl' }), { path: '/a/new.fsl' });
  assert.deepEqual(chosenPath({ canceled: true, filePaths: ['/a/b.onnx'] }), { path: null });
  assert.deepEqual(chosenPath({ canceled: false, filePaths: [] }), { path: null });
  for (const bad of [
    null,
    {},
    { kind: 'any' },
    { kind: 'file', extensions: ['../x'] },
    { kind: 'file', x: 1 },
  ])
    assert.equal(PickRequestSchema.safeParse(bad).success, false, JSON.stringify(bad));
});
