#!/usr/bin/env node
// `npm start`: the Electron app where its binary is installed, otherwise the browser host (whose URL is
// printed). Builds the renderer first when it is missing or older than its sources.
import { spawnSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { register } from 'tsx/esm/api';

register();
// glibc reads its memory tunables only when a process starts: the app's processes get them from here.
const { withMallocTunables } = await import('../src/main/engine/onnx/process-env.ts');
const root = path.resolve(import.meta.dirname, '..');
const env = withMallocTunables({ ...process.env });
const shared = path.resolve(root, '..', 'shared', 'models');
if (!env.FEWSHOT_MODELS && fs.existsSync(shared)) {
  env.FEWSHOT_MODELS = shared;
  console.log(`Using the backbones in ${shared} (set FEWSHOT_MODELS to choose others).`);
}

function newest(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}
const built = path.join(root, 'dist', 'renderer', 'index.html');
if (
  !fs.existsSync(built) ||
  fs.statSync(built).mtimeMs <
    Math.max(newest(path.join(root, 'src', 'renderer')), newest(path.join(root, 'src', 'shared')))
) {
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'],
    { cwd: root, stdio: 'inherit' },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function electronBinary() {
  try {
    const file = path.join(root, 'node_modules', 'electron', 'path.txt');
    const bin = path.join(root, 'node_modules', 'electron', 'dist', fs.readFileSync(file, 'utf8').trim());
    return fs.existsSync(bin) ? bin : null;
  } catch {
    return null;
  }
}

const electron = electronBinary();
if (electron && !process.argv.includes('--browser')) {
  const b = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-electron.mjs')], {
    cwd: root,
    stdio: 'inherit',
  });
  if (b.status !== 0) process.exit(b.status ?? 1);
  spawn(electron, [path.join(root, 'dist', 'main', 'electron', 'main.js')], {
    cwd: root,
    env,
    stdio: 'inherit',
  }).on('exit', (code) => process.exit(code ?? 0));
} else {
  if (!electron) console.log('The Electron binary is not installed here: starting the browser host instead.');
  spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'main', 'host', 'main.ts')], {
    cwd: root,
    env,
    stdio: 'inherit',
  }).on('exit', (code) => process.exit(code ?? 0));
}
