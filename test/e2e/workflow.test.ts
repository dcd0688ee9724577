/// <reference lib="dom" />
// End to end, the lab workflow as a Lobe or Teachable Machine user expects it, in Chromium against the
// browser host: choose the import folder in the file browser (no typed path), import with one rejected
// file and read the summary, re-import and read "0 new"; train; open a misclassified image on Review,
// relabel it there and see the confusion matrix change after re-evaluation; drop an image on "Try an
// image" and see its class; accept two suggested labels for unlabelled images; delete a model.
// Screenshots of every screen at 1366×768 and 1024×640 go to test-results/e2e-workflow.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startHost, type Host } from '../../src/main/host/server.ts';
import { BCCD, REPO, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const RENDERER = path.join(REPO, 'dist', 'renderer');
const SHOTS = process.env.FEWSHOT_SHOTS ?? path.join(REPO, 'test-results', 'e2e-workflow');
const skip =
  needsShared ||
  (!CHROMIUM && 'Chromium is not installed (apt-get install chromium)') ||
  (!fs.existsSync(path.join(RENDERER, 'index.html')) && 'the renderer is not built (npm run build)');
if (!CHROMIUM) console.warn('\n*** Chromium not found: the workflow end-to-end test is SKIPPED ***\n');

const CLASSES = ['Platelets', 'RBC', 'WBC'];
const PER_CLASS = 14;
const saved = process.env.FEWSHOT_BROWSE_ROOTS;
let host: Host | undefined;
let browser: Browser | undefined;
let page: Page;
let root: string;
/** A platelet filed under RBC: the mistake Review should reveal. */
const MISLABELLED = 'RBC/BloodImage_x_platelet.jpg';
let tryFile: string;
const consoleErrors: string[] = [];

function files(cls: string): string[] {
  return fs
    .readdirSync(path.join(BCCD, cls))
    .filter((f) => f.endsWith('.jpg'))
    .sort();
}

before(async () => {
  if (skip) return;
  useModelDirs(tmpDir('fsl-wf-models-'));
  root = fs.realpathSync(tmpDir('fsl-wf-browse-'));
  process.env.FEWSHOT_BROWSE_ROOTS = root;
  const data = path.join(root, 'cells');
  for (const cls of CLASSES) {
    fs.mkdirSync(path.join(data, cls), { recursive: true });
    for (const f of files(cls).slice(0, PER_CLASS))
      fs.copyFileSync(path.join(BCCD, cls, f), path.join(data, cls, f));
  }
  fs.copyFileSync(
    path.join(BCCD, 'Platelets', files('Platelets')[PER_CLASS] as string),
    path.join(data, MISLABELLED),
  );
  // Not an image: rejected with its reason, and nothing else lost.
  fs.writeFileSync(path.join(data, 'WBC', 'scan-notes.png'), 'this is not a PNG');
  // Unlabelled images in the import root, for suggestions: two platelets and two white cells.
  for (const [cls, i] of [
    ['Platelets', 20],
    ['Platelets', 21],
    ['WBC', 20],
    ['WBC', 21],
  ] as const)
    fs.copyFileSync(
      path.join(BCCD, cls, files(cls)[i] as string),
      path.join(data, `unsorted-${cls}-${i}.jpg`),
    );
  tryFile = path.join(BCCD, 'WBC', files('WBC')[30] as string);
  fs.mkdirSync(path.join(root, 'projects'));
  host = await startHost({ dataDir: tmpDir('fsl-wf-data-'), rendererDir: RENDERER });
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
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await host?.close();
  if (saved === undefined) delete process.env.FEWSHOT_BROWSE_ROOTS;
  else process.env.FEWSHOT_BROWSE_ROOTS = saved;
});

/** The screen as it is, in the window at 1366×768 and again at 1024×640 (then back). */
async function shots(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}-1366.png`) });
  await page.screenshot({ path: path.join(SHOTS, `${name}-full.png`), fullPage: true });
  await page.setViewportSize({ width: 1024, height: 640 });
  await page.screenshot({ path: path.join(SHOTS, `${name}-1024.png`) });
  await page.setViewportSize({ width: 1366, height: 768 });
}

async function browseTo(testid: string, ...names: string[]): Promise<void> {
  await page.getByTestId(`${testid}-browse`).click();
  await page.getByTestId('file-browser').waitFor();
  await page.locator(`[data-testid="browser-root"][data-path="${root}"]`).click();
  for (const n of names) await page.locator(`[data-testid="browser-entry"][data-name="${n}"]`).click();
}

async function doneJob(scope = page.locator('body')): Promise<string> {
  const done = scope.locator('[data-testid="job-progress"][data-status="done"]').last();
  await done.waitFor({ timeout: 240_000 });
  return done.innerText();
}

test(
  'import → review and fix → try → label suggestions → delete a model',
  { skip, timeout: 600_000 },
  async () => {
    const h = host as Host;
    await page.goto(h.url);
    await page.getByTestId('backbones').getByText('squeezenet1_1-imagenet').waitFor();

    // A project named in the file browser.
    await browseTo('project-file', 'projects');
    await page.getByTestId('browser-save-name').fill('workflow');
    await page.getByTestId('browser-choose').click();
    await page.getByTestId('create-project').click();

    // A folder that is not there: NOT_FOUND with its name (never "read-only"); the banner goes when an
    // import then succeeds.
    await page.getByTestId('import-folder').fill(path.join(root, 'no-such-folder'));
    await page.getByTestId('start-import').click();
    const banner = page.getByTestId('error-banner');
    await banner.waitFor();
    assert.match(await banner.innerText(), /NOT_FOUND.*no-such-folder/s);

    // The import folder, chosen in the file browser: nothing typed.
    await browseTo('import-folder', 'cells');
    await page.getByTestId('browser-choose').click();
    assert.equal(await page.getByTestId('import-folder').inputValue(), path.join(root, 'cells'));
    await page.getByTestId('start-import').click();
    await doneJob();
    assert.equal(await banner.count(), 0, 'the old banner cleared');
    const summary = page.getByTestId('import-summary');
    assert.match(await summary.innerText(), /47 new, 0 already present, 1 rejected \(1 [A-Z_]+\)/);
    const rejected = page.getByTestId('import-rejected');
    assert.ok(
      await rejected.evaluate((d) => (d as HTMLDetailsElement).open),
      'the rejected list is expanded',
    );
    assert.match(await rejected.innerText(), /scan-notes\.png/);
    await page.getByTestId('thumb').first().waitFor();
    // The grid shows file names.
    assert.match(await page.getByTestId('image-grid').innerText(), /BloodImage_\d+_\d+\.jpg/);
    await shots('1-dataset-imported');

    // Again: nothing new, said so.
    await page.getByTestId('start-import').click();
    await page
      .getByTestId('import-summary')
      .getByText(/^0 new, 47 already present/)
      .waitFor({ timeout: 120_000 });
    assert.match((await page.getByTestId('import-summary').getAttribute('class')) ?? '', /warning/);

    // Train a linear head, watching it.
    await page.getByTestId('nav-train').click();
    await page.getByTestId('strategy-linear').check();
    await page.getByTestId('start-training').click();
    await page.getByTestId('train-done').waitFor({ timeout: 240_000 });
    await shots('2-train');

    // Review: the platelet filed under RBC is a misclassified image with its file name; relabel it there.
    await page.getByTestId('open-review').click();
    await page.getByTestId('review-summary').waitFor({ timeout: 240_000 });
    const confusion = page.getByTestId('confusion-matrix');
    const before = await confusion.innerText();
    const card = page
      .getByTestId('misclassified')
      .getByTestId('review-image')
      .filter({ hasText: 'BloodImage_x_platelet.jpg' });
    await card.waitFor();
    assert.match(await card.innerText(), /true RBC, predicted Platelets/);
    await shots('3-review');
    await card.getByTestId('review-relabel-select').selectOption('Platelets');
    await card.getByTestId('review-relabel').click();
    await page
      .getByTestId('review-fixes')
      .getByText(/RBC → Platelets/)
      .waitFor();
    // Undo, then again: the change list follows.
    await page.getByTestId('review-undo').click();
    await page.getByTestId('review-fixes').waitFor({ state: 'detached' });
    await card.getByTestId('review-relabel-select').selectOption('Platelets');
    await card.getByTestId('review-relabel').click();
    await page.getByTestId('review-fixes').waitFor();
    await shots('4-review-fixed');
    await page.getByTestId('review-reevaluate').click();
    await page.getByTestId('review-summary').waitFor({ timeout: 240_000 });
    await page.getByTestId('misclassified').or(page.getByText('No misclassified images.')).first().waitFor();
    assert.equal(await page.getByText('BloodImage_x_platelet.jpg').count(), 0, 'no longer misclassified');
    const afterFix = await confusion.innerText();
    assert.notEqual(afterFix, before, 'the confusion matrix changed');
    // A click on a cell brings its images into view.
    await page.getByTestId('cm-2-2').click();
    await page.getByTestId('cell-images').waitFor();
    assert.ok(await page.getByTestId('cell-images').isVisible());
    const box = await page.getByTestId('cell-images').boundingBox();
    assert.ok(box && box.y < 768 && box.y + 40 > 0, `the cell's images are in view (y = ${box?.y})`);

    // Try an image: a file dropped on the drop zone.
    await page.getByTestId('nav-try').click();
    const bytes = fs.readFileSync(tryFile).toString('base64');
    const drop = await page.evaluateHandle(
      ([b64, name]) => {
        const bin = Uint8Array.from(atob(b64 as string), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bin], name as string, { type: 'image/jpeg' }));
        return dt;
      },
      [bytes, path.basename(tryFile)],
    );
    await page.getByTestId('try-drop').dispatchEvent('drop', { dataTransfer: drop });
    await page.getByTestId('try-predicted').waitFor({ timeout: 120_000 });
    assert.match(await page.getByTestId('try-predicted').innerText(), /WBC/);
    await page.getByTestId('try-neighbours').locator('img').first().waitFor();
    await shots('5-try');

    // Suggested labels for the four unlabelled images: accept two with the keyboard.
    await page.getByTestId('nav-dataset').click();
    await page.getByTestId('suggest-start').click();
    const cardS = page.getByTestId('suggestion-card');
    await cardS.waitFor({ timeout: 120_000 });
    await shots('6-suggestions');
    await cardS.focus();
    await page.keyboard.press('Enter');
    await page
      .getByTestId('suggestion-count')
      .getByText(/^2 of 4|1 labelled/)
      .first()
      .waitFor();
    await page.keyboard.press('Enter');
    await page
      .getByText(/2 unlabelled/)
      .first()
      .waitFor({ timeout: 30_000 });

    // Delete the model: asked first, then gone from the list, the audit says so.
    await page.getByTestId('nav-train').click();
    const rows = page.getByTestId('past-runs').locator('tbody tr');
    await rows.first().waitFor();
    const nBefore = await rows.count();
    await page.locator('[data-testid^="model-delete-"]').first().click();
    await page.getByTestId('model-delete-confirm').click();
    await page.getByText(/^Deleted /).waitFor();
    assert.equal(await page.getByTestId('past-runs').locator('tbody tr').count(), nBefore - 1);
    await shots('7-train-after-delete');

    for (const s of ['projects', 'augment', 'batch', 'report']) {
      await page.getByTestId(`nav-${s}`).click();
      await page.waitForTimeout(300);
      await shots(`8-${s}`);
    }
    assert.deepEqual(consoleErrors, []);
  },
);
