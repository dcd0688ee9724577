/// <reference lib="dom" />
// End to end, in Chromium against the browser host: on the Train screen a model is deleted only after an
// inline yes that names its batch runs; "Keep" leaves it; after deletion the list and the status line say
// what went, and the other model stays.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Backbone } from '../../src/main/engine/backbones/backbone.ts';
import { resolveBackbone } from '../../src/main/engine/backbones/registry.ts';
import { classifyFolder } from '../../src/main/engine/batch/classify-folder.ts';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { loadModelRunner } from '../../src/main/engine/model-runner.ts';
import { trainModel } from '../../src/main/engine/train.ts';
import { startHost, type Host } from '../../src/main/host/server.ts';
import { Project } from '../../src/main/store/project.ts';
import { BCCD, REPO, SQUEEZENET, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
// FEWSHOT_RENDERER_DIR: a renderer built elsewhere (vite build --outDir DIR), else the usual build.
const RENDERER = process.env.FEWSHOT_RENDERER_DIR ?? path.join(REPO, 'dist', 'renderer');
const skip =
  needsShared ||
  (!CHROMIUM && 'Chromium is not installed (apt-get install chromium)') ||
  (!fs.existsSync(path.join(RENDERER, 'index.html')) && 'the renderer is not built (npm run build)');

let host: Host | undefined;
let browser: Browser | undefined;
let page: Page;
let file = '';
let doomed = '';
let kept = '';
const consoleErrors: string[] = [];

before(async () => {
  if (skip) return;
  useModelDirs(tmpDir('fsl-e2e-delete-models-'));
  const folder = tmpDir('fsl-e2e-delete-images-');
  for (const cls of ['Platelets', 'RBC', 'WBC']) {
    fs.mkdirSync(path.join(folder, cls));
    for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 5))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(folder, cls, f));
  }
  file = path.join(tmpDir(), 'delete.fsl');
  const p = Project.create(file);
  const b = await Backbone.load(resolveBackbone(SQUEEZENET), { threads: 2 });
  try {
    await importFolder(p, folder);
    doomed = (await trainModel(p, b, { strategy: 'linear', seed: 1, estimate: false })).modelId;
    kept = (await trainModel(p, b, { strategy: 'prototype', seed: 2, estimate: false })).modelId;
    const record = p.models.get(doomed);
    assert.ok(record);
    for (const n of [1, 2])
      await classifyFolder(p, await loadModelRunner(p, record, b), record, folder, {
        outCsv: path.join(tmpDir(), `run-${n}.csv`),
      });
  } finally {
    await b.release();
    p.close();
  }
  host = await startHost({ dataDir: tmpDir('fsl-e2e-delete-data-'), rendererDir: RENDERER });
  browser = await chromium.launch({
    executablePath: CHROMIUM as string,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
});

after(async () => {
  await browser?.close();
  await host?.close();
});

test(
  'delete a model from the Train screen: asked inline, Keep keeps it, Delete deletes it',
  { skip, timeout: 120_000 },
  async () => {
    await page.goto((host as Host).url);
    await page.getByTestId('project-file').fill(file);
    await page.getByTestId('open-project').click();
    await page.getByTestId('nav-train').click();
    const rows = page.getByTestId('past-runs').locator('tbody tr');
    await page.getByTestId(`model-delete-${kept}`).waitFor();
    assert.equal(await rows.count(), 2);

    // Keep: the question goes away, nothing is deleted.
    await page.getByTestId(`model-delete-${doomed}`).click();
    const confirmation = page.getByTestId('delete-confirmation');
    await confirmation.waitFor();
    assert.match(await confirmation.innerText(), /and its 2 batch runs\?/);
    await confirmation.getByRole('button', { name: 'Keep' }).click();
    await confirmation.waitFor({ state: 'detached' });
    assert.equal(await rows.count(), 2);

    // Delete: the row goes, the status line says what went with it.
    await page.getByTestId(`model-delete-${doomed}`).click();
    await page.getByTestId('model-delete-confirm').click();
    const status = page.getByTestId('model-deleted');
    await status.waitFor();
    assert.match(
      await status.innerText(),
      /^Deleted .+ with 2 batch runs and 0 stored evaluations; exported files were left where they are\.$/,
    );
    await page.getByTestId(`model-delete-${doomed}`).waitFor({ state: 'detached' });
    assert.equal(await rows.count(), 1);
    assert.equal(await page.getByTestId(`model-delete-${kept}`).count(), 1);
    assert.deepEqual(consoleErrors, []);
  },
);
