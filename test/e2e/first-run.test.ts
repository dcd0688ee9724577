/// <reference lib="dom" />
// End to end, a first run with no backbone: the Projects and Train screens say so and offer "Add a
// backbone…"; the user browses the host's folders (the browser host's own file browser) to an .onnx file,
// installs it as a job, and the Train screen's menu lists it with Train enabled. Screenshots at 1366×768
// go to FEWSHOT_SHOTS (default: a folder in the system's temp dir).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ensureRandomResNet18 } from '../../src/main/engine/backbones/install.ts';
import { startHost, type Host } from '../../src/main/host/server.ts';
import { GENERATED_MODELS, REPO, tmpDir } from '../helpers/env.ts';
import { needsTorch, PYTHON } from '../helpers/torch.ts';
import { spawnSync } from 'node:child_process';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const RENDERER = path.join(REPO, 'dist', 'renderer');
const SHOTS = process.env.FEWSHOT_SHOTS ?? path.join(os.tmpdir(), 'fewshot-e2e-first-run');
const skip =
  (!CHROMIUM && 'Chromium is not installed (apt-get install chromium)') ||
  (!fs.existsSync(path.join(RENDERER, 'index.html')) && 'the renderer is not built (npm run build)');
if (!CHROMIUM) console.warn('\n*** Chromium not found: the first-run end-to-end test is SKIPPED ***\n');

const saved = {
  FEWSHOT_MODELS: process.env.FEWSHOT_MODELS,
  FEWSHOT_USER_MODELS: process.env.FEWSHOT_USER_MODELS,
  FEWSHOT_RESOURCES: process.env.FEWSHOT_RESOURCES,
  FEWSHOT_BROWSE_ROOTS: process.env.FEWSHOT_BROWSE_ROOTS,
};
let host: Host | undefined;
let browser: Browser | undefined;
let page: Page;
let root: string;
const consoleErrors: string[] = [];

before(async () => {
  if (skip) return;
  // No backbone anywhere: the app's own manifest lists one, missing; no extra folders; an empty user folder.
  const resources = tmpDir('fsl-first-resources-');
  fs.mkdirSync(path.join(resources, 'models'));
  fs.copyFileSync(
    path.join(REPO, 'resources', 'models', 'manifest.json'),
    path.join(resources, 'models', 'manifest.json'),
  );
  process.env.FEWSHOT_RESOURCES = resources;
  process.env.FEWSHOT_MODELS = '';
  process.env.FEWSHOT_USER_MODELS = tmpDir('fsl-first-user-models-');
  // The folder the file browser may show besides home and mounts, holding the file to install.
  root = fs.realpathSync(tmpDir('fsl-first-browse-'));
  process.env.FEWSHOT_BROWSE_ROOTS = root;
  const entry = ensureRandomResNet18(GENERATED_MODELS);
  fs.mkdirSync(path.join(root, 'models'));
  fs.copyFileSync(path.join(GENERATED_MODELS, entry.file), path.join(root, 'models', 'resnet18-random.onnx'));
  fs.writeFileSync(path.join(root, 'models', 'README.txt'), 'not a backbone');
  if (!needsTorch) {
    // What a lab carries in on a USB stick: a torchvision state dict saved by torch.save.
    const r = spawnSync(
      PYTHON,
      [
        '-c',
        'import sys, torch, torchvision; torch.manual_seed(5); torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])',
        path.join(root, 'models', 'resnet18-lab.pth'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
  }
  fs.mkdirSync(path.join(root, 'projects'));

  host = await startHost({ dataDir: tmpDir('fsl-first-data-'), rendererDir: RENDERER });
  browser = await chromium.launch({
    executablePath: CHROMIUM as string,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await host?.close();
  for (const [k, v] of Object.entries(saved))
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
});

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

test(
  'first run: no backbone → browse to an .onnx → installed as a job → Train lists it and is enabled',
  { skip, timeout: 180_000 },
  async () => {
    const h = host as Host;
    await page.goto(h.url);

    // The Projects screen says there is no backbone, in one sentence, and offers to add one — also on the
    // manifest's missing backbone.
    const sentence = page.getByTestId('no-backbone');
    await sentence.waitFor();
    assert.match(await sentence.innerText(), /^No backbone is installed yet\. Add one to start training: /);
    await page.getByTestId('add-backbone-button').waitFor();
    await page.getByTestId('add-backbone-resnet18-imagenet-button').waitFor();
    assert.match(await page.getByText('Type or browse to a project file first.').innerText(), /project file/);
    await shot('1-projects-no-backbone');

    // A new project, named in the file browser: a place, then a name.
    await page.getByTestId('project-file-browse').click();
    await page.getByTestId('file-browser').waitFor();
    await page.locator(`[data-testid="browser-root"][data-path="${root}"]`).click();
    await page.locator('[data-testid="browser-entry"][data-name="projects"]').click();
    await page.getByTestId('browser-crumb').getByText('projects').waitFor();
    await page.getByTestId('browser-save-name').fill('lab');
    await page.getByTestId('browser-choose').click();
    await page.getByTestId('file-browser').waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('project-file').inputValue(), path.join(root, 'projects', 'lab.fsl'));
    await page.getByTestId('create-project').click();
    await page.getByTestId('start-import').waitFor();
    assert.ok(await page.getByTestId('start-import').isDisabled());
    await page.getByText('Browse to a folder, or drop one here.').waitFor();
    // The import folder, chosen in the browser's folder mode: folders only, and "Choose this folder".
    await page.getByTestId('import-folder-browse').click();
    await page.locator(`[data-testid="browser-root"][data-path="${root}"]`).click();
    await page.locator('[data-testid="browser-entry"][data-name="models"]').waitFor();
    assert.deepEqual(
      await page
        .getByTestId('browser-entries')
        .locator('[data-testid="browser-entry"]')
        .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.kind)),
      ['folder', 'folder'],
    );
    await shot('2a-folder-browser');
    await page.getByTestId('browser-choose').click();
    assert.equal(await page.getByTestId('import-folder').inputValue(), root);
    assert.equal(await page.getByTestId('start-import').isDisabled(), false);
    await shot('2b-dataset');

    // Train, with no backbone: the same sentence, and Train disabled saying why.
    await page.getByTestId('nav-train').click();
    await page.getByTestId('train-no-backbone').waitFor();
    assert.match(await page.getByTestId('train-no-backbone').innerText(), /No backbone is installed yet/);
    assert.ok(await page.getByTestId('start-training').isDisabled());
    assert.match(await page.getByTestId('train-why').innerText(), /Add a backbone first/);
    await shot('2c-train-no-backbone');

    // Back on Projects: Add a backbone… opens the host's file browser.
    await page.getByTestId('nav-projects').click();
    await page.getByTestId('add-backbone-button').click();
    const dialog = page.getByTestId('file-browser');
    await dialog.waitFor();
    // A folder outside what the host may show is refused, in words.
    await page.getByTestId('browser-location').fill('/');
    await page.getByTestId('browser-location').press('Enter');
    assert.match(
      await page.getByTestId('browser-error').innerText(),
      /outside the folders this app may show/,
    );
    await page.locator(`[data-testid="browser-root"][data-path="${root}"]`).click();
    await page.locator('[data-testid="browser-entry"][data-name="models"]').click();
    const onnx = page.locator('[data-testid="browser-entry"][data-name="resnet18-random.onnx"]');
    await onnx.waitFor();
    // Only backbone files are shown; the filter lets every file through.
    const readme = page.locator('[data-testid="browser-entry"][data-name="README.txt"]');
    assert.equal(await readme.count(), 0);
    await page.getByTestId('browser-filter').selectOption('all');
    await readme.waitFor();
    await page.getByTestId('browser-filter').selectOption('filtered');
    await readme.waitFor({ state: 'detached' });
    assert.ok(await page.getByTestId('browser-choose').isDisabled());
    await page.getByText('Select a file.').waitFor();
    await onnx.click();
    assert.equal(
      await page.getByTestId('browser-chosen').innerText(),
      path.join(root, 'models', 'resnet18-random.onnx'),
    );
    await shot('3-file-browser');
    await page.getByTestId('browser-choose').click();
    await dialog.waitFor({ state: 'detached' });

    // Installed as a job: its id, architecture and feature size, and the listing says installed.
    const added = page.getByTestId('add-backbone').getByTestId('backbone-added');
    await added.waitFor({ timeout: 120_000 });
    assert.match(await added.innerText(), /Installed resnet18-random: resnet18, 512 features per image/);
    await page.getByTestId('backbones').getByText('resnet18-random').waitFor();
    assert.equal(await page.getByTestId('no-backbone').count(), 0, 'the sentence is gone');
    await shot('4-projects-after-install');

    // Train: the menu lists it, and Train is enabled.
    await page.getByTestId('nav-train').click();
    await page.getByTestId('recommendation').waitFor();
    const options = await page.getByTestId('train-backbone').locator('option').allInnerTexts();
    assert.deepEqual(options, ['resnet18-random']);
    assert.equal(await page.getByTestId('start-training').isDisabled(), false);
    assert.equal(await page.getByTestId('train-no-backbone').count(), 0);
    assert.equal(await page.getByTestId('train-why').count(), 0);
    await shot('5-train-after-install');

    assert.deepEqual(consoleErrors, [], 'no console errors');
  },
);

test(
  'a PyTorch checkpoint from the missing resnet18-imagenet row installs under that id, no Python involved',
  { skip: skip || needsTorch, timeout: 240_000 },
  async () => {
    await page.getByTestId('nav-projects').click();
    await page.getByTestId('add-backbone-resnet18-imagenet-button').click();
    await page.getByTestId('file-browser').waitFor();
    await page.locator(`[data-testid="browser-root"][data-path="${root}"]`).click();
    await page.locator('[data-testid="browser-entry"][data-name="models"]').click();
    const pth = page.locator('[data-testid="browser-entry"][data-name="resnet18-lab.pth"]');
    await pth.waitFor();
    await pth.click();
    await page.getByTestId('browser-choose').click();
    // The row stops being "missing": it says installed, just now.
    await page.getByTestId('backbone-just-added-resnet18-imagenet').waitFor({ timeout: 180_000 });
    assert.equal(await page.getByTestId('add-backbone-resnet18-imagenet').count(), 0);
    await shot('6-projects-after-pth');
    await page.getByTestId('nav-train').click();
    await page.getByTestId('recommendation').waitFor();
    const options = await page.getByTestId('train-backbone').locator('option').allInnerTexts();
    assert.deepEqual(options.sort(), ['resnet18-imagenet', 'resnet18-random']);
    assert.equal(await page.getByTestId('start-training').isDisabled(), false);
    assert.deepEqual(consoleErrors, [], 'no console errors');
  },
);
