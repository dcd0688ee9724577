/// <reference lib="dom" />
// End to end: the real renderer in Debian's Chromium against the browser host, on real data:
// create a project → import BCCD → preview augmentation → train linear → review, click a confusion cell
// → batch-classify a folder → results visible. Screenshots of every screen go to test-results/e2e.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { importFolder } from '../../src/main/engine/import/import-folder.ts';
import { startHost, type Host } from '../../src/main/host/server.ts';
import { Project } from '../../src/main/store/project.ts';
import { damagePages } from '../helpers/damage.ts';
import { BCCD, REPO, needsShared, tmpDir, useModelDirs } from '../helpers/env.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const RENDERER = path.join(REPO, 'dist', 'renderer');
const SHOTS = path.join(REPO, 'test-results', 'e2e');
const skip =
  needsShared ||
  (!CHROMIUM && 'Chromium is not installed (apt-get install chromium)') ||
  (!fs.existsSync(path.join(RENDERER, 'index.html')) && 'the renderer is not built (npm run build)');
if (!CHROMIUM) console.warn('\n*** Chromium not found: the end-to-end test is SKIPPED ***\n');

let host: Host | undefined;
let browser: Browser | undefined;
let page: Page;
const consoleErrors: string[] = [];
const cspViolations: string[] = [];

before(async () => {
  if (skip) return;
  useModelDirs(tmpDir('fsl-e2e-models-'));
  host = await startHost({ dataDir: tmpDir('fsl-e2e-data-'), rendererDir: RENDERER });
  browser = await chromium.launch({
    executablePath: CHROMIUM as string,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await host?.close();
});

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}-window.png`) });
}

test(
  'create → import → augment → train → review → batch → report, with no console errors or CSP violations',
  { skip, timeout: 300_000 },
  async () => {
    const h = host as Host;
    await page.goto(h.url);
    await page.getByTestId('backbones').getByText('squeezenet1_1-imagenet').waitFor();
    await shot('1-projects');

    // Create a project.
    const projectFile = path.join(tmpDir('fsl-e2e-proj-'), 'lab.fsl');
    await page.getByTestId('project-file').fill(projectFile);
    await page.getByTestId('create-project').click();

    // Import BCCD with its groups.
    await page.getByTestId('import-folder').fill(BCCD);
    await page.getByTestId('import-groups').fill(path.join(BCCD, 'groups.csv'));
    await page.getByTestId('start-import').click();
    await page.locator('[data-testid="job-progress"][data-status="done"]').waitFor({ timeout: 120_000 });
    await page.getByTestId('class-balance').getByText('WBC').waitFor();
    await page.getByTestId('thumb').first().waitFor();
    // Thumbnails really load (decode() rejects on a broken image). No waitForFunction: it evals in the page.
    for (let i = 0; i < 6; i++)
      await page
        .getByTestId('thumb')
        .nth(i)
        .locator('img')
        .evaluate((img: HTMLImageElement) => img.decode());
    const balance = await page.getByTestId('class-balance').innerText();
    assert.match(balance, /Platelets/);
    assert.match(balance, /400 used/);
    // Keyboard: focus the grid, select the first image, exclude it, include it again.
    await page.getByTestId('image-grid').focus();
    await page.keyboard.press(' ');
    await page.getByText('1 selected').waitFor();
    await shot('2-dataset');
    // The grid fetches pages as they scroll into view: the last class appears at the bottom.
    await page.getByTestId('image-grid').evaluate((el: HTMLElement) => (el.scrollTop = el.scrollHeight));
    await page.getByTestId('image-grid').getByText('WBC').first().waitFor();
    // Find by file name, across every page.
    const last = fs.readdirSync(path.join(BCCD, 'WBC')).sort().at(-1) as string;
    await page.getByTestId('image-search').fill(last);
    await page.getByText(/^1 shown/).waitFor();
    await page.getByTestId('image-search').fill('');
    await page.getByText(/^1133 shown/).waitFor();

    // Augmentation preview: eight variants from the training code.
    await page.getByTestId('nav-augment').click();
    await page.getByTestId('aug-pick').first().waitFor();
    await page.getByTestId('preview-augment').click();
    await page.getByTestId('augment-variants').locator('img').nth(7).waitFor();
    assert.equal(await page.getByTestId('augment-variants').locator('img').count(), 8);
    await shot('3-augmentation');

    // Train a linear head.
    await page.getByTestId('nav-train').click();
    await page.getByTestId('recommendation').waitFor();
    await page.getByTestId('strategy-linear').check();
    assert.equal(await page.getByTestId('strategy-last-stage').isDisabled(), false);
    assert.match(await page.getByTestId('recommendation').innerText(), /Partial unfreeze/);
    await page.getByTestId('start-training').click();
    await page.getByTestId('train-done').waitFor({ timeout: 120_000 });
    await page.getByTestId('loss-chart').waitFor(); // the live loss of the fit
    await page.getByTestId('past-runs').locator('tbody tr').first().waitFor();
    await shot('4-train');

    // Review: the confusion matrix, then one cell's images.
    await page.getByTestId('open-review').click();
    await page.getByTestId('confusion-matrix').waitFor({ timeout: 120_000 });
    await page.getByTestId('per-class').getByText('WBC').waitFor();
    await page.getByTestId('cm-2-2').click();
    await page.getByTestId('cell-images').locator('img').first().waitFor();
    const heading = await page.getByTestId('cell-images').locator('h2').innerText();
    assert.match(heading, /True WBC, predicted WBC: \d+ images/);
    await shot('5-review');

    // A fine-tuning run survives a reload of the window: the same job's progress, then Cancel.
    await page.getByTestId('nav-train').click();
    await page.getByTestId('strategy-last-stage').check();
    await page.getByTestId('train-epochs').fill('40');
    // Before it starts: what it trains, on which device, and how long it will take, from a measured step.
    await page
      .getByTestId('train-estimate')
      .getByText(/about \d+ (s|min|h) for 40 epochs/)
      .waitFor({ timeout: 120_000 });
    assert.match(
      await page.getByTestId('train-estimate').innerText(),
      /Trains (layer4|fire9|block 16) of \S+ on CPU: about \d+ (s|min|h) for 40 epochs \(\d+ steps of \d+\.\d+ s measured here/,
    );
    await shot('4a-train-estimate');
    await page.getByTestId('start-training').click();
    const training = page.locator('[data-testid="job-progress"][data-status="running"]');
    await training.getByText(/training: \d+\/\d+/).waitFor({ timeout: 120_000 });
    const jobId = await training.getAttribute('data-job-id');
    assert.ok(jobId);
    await page.reload();
    await page.getByTestId('running-jobs').waitFor();
    const again = page.locator(`[data-testid="job-progress"][data-job-id="${jobId}"][data-status="running"]`);
    await again.getByText(/training: \d+\/\d+/).waitFor({ timeout: 60_000 });
    await page.getByTestId('loss-chart').waitFor(); // the loss so far came back with the job
    // The form shows the running job's own settings, not the defaults.
    assert.equal(await page.getByTestId('train-epochs').inputValue(), '40');
    assert.ok(await page.getByTestId('strategy-last-stage').isChecked());
    await shot('4b-train-after-reload');
    await again.getByTestId('cancel-job').click();
    await page
      .locator(`[data-testid="job-progress"][data-job-id="${jobId}"][data-status="cancelled"]`)
      .waitFor({ timeout: 60_000 });
    assert.equal(await page.getByTestId('past-runs').locator('tbody tr').count(), 1, 'no model saved');

    // Review opened again shows the stored evaluation: no second evaluation job.
    await page.getByTestId('nav-review').click();
    await page.getByTestId('confusion-matrix').waitFor({ timeout: 60_000 });
    const jobs = await h.backend.invoke('jobs.list', {});
    assert.ok(jobs.ok);
    const kinds = (jobs.value as { jobs: { kind: string; status: string }[] }).jobs;
    assert.equal(kinds.filter((j) => j.kind === 'review').length, 1, 'one evaluation for two visits');
    assert.ok(kinds.some((j) => j.kind === 'train' && j.status === 'cancelled'));

    // Review: the same evaluation with test-time augmentation, beside the single view.
    await page.getByTestId('review-tta-kind').selectOption('flip');
    await page.getByTestId('review-tta-start').click();
    const ttaTable = page.getByTestId('review-tta-table');
    await ttaTable.waitFor({ timeout: 180_000 });
    assert.match(await ttaTable.innerText(), /Single view[\s\S]*2 views[\s\S]*Accuracy[\s\S]*points/);
    await page.getByTestId('review-tta').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, '5b-review-tta-window.png') });

    // Batch: classify a folder with a damaged file among real crops.
    const incoming = tmpDir('fsl-e2e-incoming-');
    const outDir = tmpDir('fsl-e2e-out-');
    for (const f of fs.readdirSync(path.join(BCCD, 'RBC')).slice(0, 20))
      fs.copyFileSync(path.join(BCCD, 'RBC', f), path.join(incoming, f));
    fs.writeFileSync(path.join(incoming, 'damaged.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]));
    await page.getByTestId('nav-batch').click();
    await page.getByTestId('batch-folder').fill(incoming);
    await page.getByTestId('batch-out').fill(path.join(outDir, 'results.csv'));
    await page.getByTestId('start-batch').click();
    await page.getByTestId('batch-summary').waitFor({ timeout: 120_000 });
    await page.getByTestId('batch-results').locator('tbody tr').nth(20).waitFor();
    assert.equal(await page.getByTestId('batch-results').locator('tbody tr').count(), 21);
    await page.getByTestId('filter-error').click();
    await page.getByTestId('batch-results').locator('tbody tr').nth(1).waitFor({ state: 'detached' });
    assert.match(
      await page.getByTestId('batch-results').locator('tbody tr').innerText(),
      /damaged\.jpg.*error/s,
    );
    assert.ok(fs.existsSync(path.join(outDir, 'results.csv')));
    const batchPdf = path.join(outDir, 'batch-report.pdf');
    await page.getByTestId('batch-report-out').fill(batchPdf);
    await page.getByTestId('export-batch-report').click();
    await page
      .getByTestId('batch-summary')
      .locator('[data-testid="job-progress"][data-status="done"]')
      .waitFor({ timeout: 60_000 });
    assert.equal(fs.readFileSync(batchPdf).subarray(0, 5).toString(), '%PDF-');
    await shot('6-batch');

    // The same folder with two views per image: the run says so.
    await page.getByTestId('batch-out').fill(path.join(outDir, 'results-views.csv'));
    await page.getByTestId('batch-tta').selectOption('flip');
    await page.getByTestId('start-batch').click();
    await page
      .getByTestId('batch-summary')
      .getByText(/centre crop and its mirror \(2 views/)
      .waitFor({ timeout: 180_000 });
    assert.ok(fs.existsSync(path.join(outDir, 'results-views.csv')));
    await page.screenshot({ path: path.join(SHOTS, '6b-batch-views-window.png') });

    // Report: the evaluation PDF and the model bundle.
    await page.getByTestId('nav-report').click();
    const reportPdf = path.join(outDir, 'report.pdf');
    await page.getByTestId('report-out').fill(reportPdf);
    await page.getByTestId('export-report').click();
    await page.getByTestId('report-done').waitFor({ timeout: 120_000 });
    assert.equal(fs.readFileSync(reportPdf).subarray(0, 5).toString(), '%PDF-');
    await page.getByTestId('bundle-out').fill(path.join(outDir, 'bundle'));
    await page.getByTestId('export-bundle').click();
    await page.getByTestId('bundle-done').waitFor({ timeout: 120_000 });
    assert.match(await page.getByTestId('bundle-done').innerText(), /Parity: (\d+)\/\1 same class/);
    await shot('7-report');

    // The audit trail records what was done, with its chain intact.
    await page.getByTestId('nav-projects').click();
    await page.getByTestId('audit').getByText('The chain of records is intact.').waitFor();
    await page
      .getByTestId('audit')
      .locator('td', { hasText: /^export$/ })
      .first()
      .waitFor();
    const audit = await page.getByTestId('audit').innerText();
    for (const action of ['import', 'train', 'classify', 'export'])
      assert.match(audit, new RegExp(`\\b${action}\\b`));

    assert.deepEqual(cspViolations, [], 'no CSP violations');
    assert.deepEqual(consoleErrors, [], 'no console errors');
  },
);

test('the host refuses requests without the token or from another origin', { skip }, async () => {
  const h = host as Host;
  const noToken = await fetch(`http://127.0.0.1:${h.port}/img/1?size=64`);
  assert.equal(noToken.status, 403);
  // fetch() may not set Host, so ask the way a DNS-rebinding page would arrive: another Host header.
  const badHost = await new Promise<number>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: h.port, path: '/', headers: { Host: 'evil.example' } }, (res) =>
        resolve(res.statusCode ?? 0),
      )
      .on('error', reject);
  });
  assert.equal(badHost, 421);
  const traversal = await fetch(`http://127.0.0.1:${h.port}/..%2f..%2fpackage.json`);
  assert.equal(traversal.status, 404);
  const page200 = await fetch(`http://127.0.0.1:${h.port}/`);
  assert.equal(page200.status, 200);
  assert.match(page200.headers.get('content-security-policy') ?? '', /default-src 'none'/);
});

test(
  'a damaged project opens the recovery screen; the file is kept and the recovered copy opens',
  { skip, timeout: 120_000 },
  async () => {
    const h = host as Host;
    const dir = tmpDir('fsl-e2e-damaged-');
    const images = path.join(dir, 'images');
    for (const cls of ['WBC', 'RBC']) {
      fs.mkdirSync(path.join(images, cls), { recursive: true });
      for (const f of fs.readdirSync(path.join(BCCD, cls)).sort().slice(0, 40))
        fs.copyFileSync(path.join(BCCD, cls, f), path.join(images, cls, f));
    }
    const file = path.join(dir, 'ward.fsl');
    const p = Project.create(file);
    await importFolder(p, images);
    await p.backup(path.join(dir, 'ward.fsl.20261120.backup'));
    p.close();
    damagePages(file, 0.5, 3);
    const before = fs.readFileSync(file);

    await page.goto(h.url);
    await page.getByTestId('project-file').fill(file);
    await page.getByTestId('open-project').click();
    await page.getByTestId('recovery-panel').waitFor();
    assert.equal(await page.getByTestId('backup-row').count(), 1);
    assert.match(await page.getByTestId('backups').innerText(), /readable/);
    await page.getByTestId('recover-project').click();
    await page.getByTestId('recovery-report').waitFor();
    const report = await page.getByTestId('recovery-report').innerText();
    assert.match(report, /ward\.recovered-/);
    assert.match(report, /images/);
    await shot('8-recovery');
    await page.getByTestId('open-recovered').click();
    await page.getByTestId('class-balance').getByText('WBC').waitFor();
    assert.ok(fs.readFileSync(file).equals(before), 'the damaged file is unchanged');
    assert.deepEqual(cspViolations, [], 'no CSP violations');
    assert.deepEqual(consoleErrors, [], 'no console errors');
  },
);
