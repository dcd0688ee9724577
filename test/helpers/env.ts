// Where tests find the shared data and models, and their own scratch folders.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const SHARED = path.resolve(REPO, '..', 'shared');
export const SHARED_MODELS = path.join(SHARED, 'models');
export const BCCD = path.join(SHARED, 'data', 'bccd-cells');
export const OMNIGLOT = path.join(SHARED, 'data', 'omniglot');
export const SQUEEZENET = 'squeezenet1_1-imagenet';
/** Models the project generates for itself (the seeded ResNet18), kept between runs. */
export const GENERATED_MODELS = path.join(REPO, '.cache', 'models');

const present = fs.existsSync(path.join(SHARED, 'data')) && fs.existsSync(SHARED_MODELS);
if (!present) {
  console.warn(
    `\n*** ../shared is absent (${SHARED}): tests that need real images and models are SKIPPED ***\n`,
  );
}

/** A skip reason for node:test when ../shared is missing, else false. */
export const needsShared: string | false = present ? false : `needs ../shared (not found at ${SHARED})`;

/** Points the backbone registry at the shared models and a scratch user folder. */
export function useModelDirs(userDir: string, extra: string[] = [SHARED_MODELS, GENERATED_MODELS]): void {
  process.env.FEWSHOT_MODELS = extra.join(path.delimiter);
  process.env.FEWSHOT_USER_MODELS = userDir;
}

const created: string[] = [];
process.on('exit', () => {
  if (process.env.FEWSHOT_KEEP_TMP) return;
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

/** A scratch folder, removed when the test process exits (keep it with FEWSHOT_KEEP_TMP=1). */
export function tmpDir(prefix = 'fsl-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

/** Counts files per first-level subfolder, the way an import should see them. */
export function countImages(root: string, exts = /\.(jpe?g|png)$/i): Record<string, number> {
  const out: Record<string, number> = {};
  for (const cls of fs.readdirSync(root, { withFileTypes: true })) {
    if (!cls.isDirectory()) continue;
    const walk = (d: string): number =>
      fs
        .readdirSync(d, { withFileTypes: true })
        .reduce((n, e) => n + (e.isDirectory() ? walk(path.join(d, e.name)) : exts.test(e.name) ? 1 : 0), 0);
    out[cls.name] = walk(path.join(root, cls.name));
  }
  return out;
}

/**
 * A command prefix under which file permissions apply: none for an ordinary user; as root (who reads and
 * writes everything), `setpriv` to `nobody`; null when that is not possible.
 */
export function unprivileged(): string[] | null {
  if (process.getuid?.() !== 0) return [];
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => fs.existsSync(f));
  return setpriv ? [setpriv, '--reuid=65534', '--regid=65534', '--clear-groups', '--'] : null;
}
