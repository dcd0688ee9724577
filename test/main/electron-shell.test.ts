import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Backend } from '../../src/main/host/backend.ts';
import type { JobEvent } from '../../src/shared/contract.ts';
import { REPO, tmpDir } from '../helpers/env.ts';
import { resolveInside, imageRequest, webPreferences } from '../../src/main/electron/window-options.ts';
import { buildApi } from '../../src/preload/api.ts';
import { CHANNELS } from '../../src/shared/contract.ts';

test("the window's webPreferences are locked down", () => {
  assert.deepEqual(webPreferences('/app/preload.cjs'), {
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    spellcheck: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    preload: '/app/preload.cjs',
  });
});

test('the preload exposes exactly one function per channel plus onJobEvent, and no ipcRenderer', async () => {
  const calls: [string, unknown][] = [];
  const api = buildApi(
    async (channel, input) => {
      calls.push([channel, input]);
      return { ok: true, value: null };
    },
    () => () => undefined,
  );
  const allow = [...CHANNELS, 'onJobEvent'].sort();
  assert.deepEqual(Object.keys(api).sort(), allow);
  assert.ok(Object.isFrozen(api));
  assert.ok(Object.values(api).every((v) => typeof v === 'function'));
  assert.equal('ipcRenderer' in api, false);
  await (api['dataset.summary'] as (i: unknown) => Promise<unknown>)({});
  assert.deepEqual(calls, [['dataset.summary', {}]]);
});

test('a dropped folder: the preload adds pathForFile only when given one, and it returns the path', () => {
  const api = buildApi(
    async () => ({ ok: true, value: null }),
    () => () => undefined,
    undefined,
    undefined,
    (file) => `/data/${(file as { name: string }).name}`,
  );
  assert.deepEqual(Object.keys(api).sort(), [...CHANNELS, 'onJobEvent', 'pathForFile'].sort());
  assert.equal((api.pathForFile as (f: unknown) => string)({ name: 'cells' }), '/data/cells');
});

test('app:// paths cannot leave the renderer folder', () => {
  const root = '/opt/fewshot/renderer';
  assert.equal(resolveInside(root, '/index.html'), '/opt/fewshot/renderer/index.html');
  assert.equal(resolveInside(root, '/assets/app.js'), '/opt/fewshot/renderer/assets/app.js');
  assert.equal(resolveInside(root, '/'), '/opt/fewshot/renderer/index.html');
  for (const bad of [
    '/../etc/passwd',
    '/assets/../../secret',
    '/%2e%2e/etc/passwd',
    '/%2E%2E%2Fetc',
    '/C:/Windows/win.ini',
    '/..%5c..%5cwin.ini',
    '/%00.html',
    '/%zz',
    '/\\\\server\\share\\x.png', // UNC
    '/%5c%5cserver%5cshare',
    '/..',
    '/a/%2e%2e/%2e%2e/b',
  ]) {
    assert.equal(resolveInside(root, bad), null, bad);
  }
  // An absolute path after the host stays inside the folder (it names a renderer file that does not exist).
  assert.equal(resolveInside(root, '//etc/passwd'), '/opt/fewshot/renderer/etc/passwd');
});

test('app://img/ takes an image id only: paths, absolute, UNC and traversal are refused', () => {
  assert.deepEqual(imageRequest(new URL('app://img/42?size=64')), { id: 42, size: 64 });
  assert.deepEqual(imageRequest(new URL('app://img/7?size=99999')), { id: 7, size: 512 });
  for (const bad of [
    'app://img/../../etc/passwd',
    'app://img/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    'app://img//etc/passwd',
    'app://img/C:/Windows/win.ini',
    'app://img/%5c%5cserver%5cshare%5cx.png',
    'app://img/\\\\server\\share\\x.png',
    'app://img/12%2f..%2f13',
    'app://img/12%00',
    'app://img/-1',
    'app://img/',
  ]) {
    assert.equal(imageRequest(new URL(bad)), null, bad);
  }
});

test('the bundled engine runs its jobs in the bundled job worker (plain Node, as in the utility process)', async () => {
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'build-electron.mjs')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const worker = path.join(REPO, 'dist', 'main', 'electron', 'job-worker.js');
  for (const f of ['backend-process.js', 'job-worker.js', 'decode-worker.js'])
    assert.ok(fs.existsSync(path.join(REPO, 'dist', 'main', 'electron', f)), f);
  const events: JobEvent[] = [];
  const bundled = new Backend({
    dataDir: tmpDir(),
    transport: 'electron',
    jobWorker: worker,
    onEvent: (e) => events.push(e),
  });
  try {
    const created = await bundled.invoke('project.create', { file: path.join(tmpDir(), 'bundle.fsl') });
    assert.ok(created.ok);
    const out = path.join(tmpDir(), 'audit.json');
    const started = await bundled.invoke('audit.export', { out });
    assert.ok(started.ok);
    const jobId = (started.value as { jobId: string }).jobId;
    while (!events.some((e) => e.jobId === jobId && e.type !== 'progress'))
      await new Promise((res) => setTimeout(res, 20));
    assert.equal(events.find((e) => e.jobId === jobId && e.type !== 'progress')?.type, 'done');
    assert.equal((JSON.parse(fs.readFileSync(out, 'utf8')) as { entries: unknown[] }).entries.length, 1);
  } finally {
    await bundled.close();
  }
});

/** The `electronFuses:` block of electron-builder.yml, as key → value. */
function builderFuses(): Record<string, string> {
  const lines = fs.readFileSync(path.join(REPO, 'electron-builder.yml'), 'utf8').split('\n');
  const start = lines.findIndex((l) => /^electronFuses:\s*$/.test(l));
  assert.ok(start >= 0, 'electron-builder.yml has an electronFuses block');
  const fuses: Record<string, string> = {};
  for (const l of lines.slice(start + 1)) {
    if (/^\s*(#.*)?$/.test(l)) continue;
    const m = /^\s+([A-Za-z]+):\s*(\S+)\s*(#.*)?$/.exec(l);
    if (!m) break;
    fuses[m[1] as string] = m[2] as string;
  }
  return fuses;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mts|js|mjs|cjs|svelte)$/.test(e.name) ? [p] : [];
  });
}

test('the packaged app flips the fuses, and no code runs the Electron binary as Node', () => {
  const fuses = builderFuses();
  assert.deepEqual(fuses, {
    runAsNode: 'false',
    enableNodeOptionsEnvironmentVariable: 'false',
    enableNodeCliInspectArguments: 'false',
    onlyLoadAppFromAsar: 'true',
    enableEmbeddedAsarIntegrityValidation: 'true',
  });
  // Every key is one the installed electron-builder knows (a misspelt fuse would be ignored).
  const schema = JSON.parse(
    fs.readFileSync(path.join(REPO, 'node_modules', 'app-builder-lib', 'scheme.json'), 'utf8'),
  ) as { definitions: { FuseOptionsV1: { properties: Record<string, unknown> } } };
  for (const key of Object.keys(fuses))
    assert.ok(key in schema.definitions.FuseOptionsV1.properties, `electron-builder knows the fuse ${key}`);

  // With RunAsNode off, the variable would be ignored: decoders are utility processes instead.
  const runAsNode = ['ELECTRON', 'RUN', 'AS', 'NODE'].join('_');
  const sources = ['src', 'scripts', 'bin'].flatMap((d) => sourceFiles(path.join(REPO, d)));
  assert.ok(sources.length > 50);
  for (const f of sources) assert.ok(!fs.readFileSync(f, 'utf8').includes(runAsNode), path.relative(REPO, f));
  const bundles = path.join(REPO, 'dist', 'main', 'electron');
  if (fs.existsSync(bundles))
    for (const f of sourceFiles(bundles))
      assert.ok(!fs.readFileSync(f, 'utf8').includes(runAsNode), path.relative(REPO, f));
});

test('under Node, decoders are plain child processes (the path the decode tests run)', async () => {
  const { decoderLauncher, forkDecoder } = await import('../../src/main/engine/image/decoder-process.ts');
  assert.equal(process.versions.electron, undefined);
  assert.equal(decoderLauncher(), forkDecoder);
});

test('the preload adds the engine notices only when the shell gives them, and nothing else', () => {
  const api = buildApi(
    async () => ({ ok: true, value: null }),
    () => () => undefined,
    async () => ({ path: null }),
    () => () => undefined,
  );
  assert.deepEqual(Object.keys(api).sort(), [...CHANNELS, 'onJobEvent', 'pickPath', 'onEngineNotice'].sort());
});
