// The build step that puts ResNet18 in the installer: torchvision's checkpoint (a file the build machine
// has, or downloaded there from torchvision's own URL with its hash checked) is converted and placed in
// resources/models/bundled, which electron-builder ships with the app. The installed app never downloads:
// this runs on a build machine only.

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { BackboneEntry } from '../../../shared/backbones.ts';
import { FewShotError } from '../../../shared/errors.ts';
import { addOnnxBackbone, upsertManifestEntry } from './install.ts';
import { hubHashPrefix, TORCHVISION_FILES } from './pth-import.ts';
import { builtinModelsDir, readManifest } from './registry.ts';

export const TORCHVISION_RESNET18_URL = 'https://download.pytorch.org/models/resnet18-f37072fd.pth';

/** Where bundled backbones live inside the app's resources (read before the tracked manifest's entries). */
export function bundledModelsDir(resources = builtinModelsDir()): string {
  return path.join(resources, 'bundled');
}

/** Downloads `url` to `dest`; a short body, a redirect loop or an HTTP error is a typed error. */
export async function download(
  url: string,
  dest: string,
  onProgress: (received: number, total: number | null) => void = () => {},
  redirects = 5,
): Promise<void> {
  const get = url.startsWith('https:') ? https.get : url.startsWith('http:') ? http.get : null;
  if (!get) throw new FewShotError('INVALID_INPUT', `Only http(s) URLs can be fetched, not ${url}.`);
  await new Promise<void>((resolve, reject) => {
    const req = get(url, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects <= 0) return reject(new FewShotError('UNREADABLE', `Too many redirects from ${url}.`));
        const next = new URL(res.headers.location, url).toString();
        download(next, dest, onProgress, redirects - 1).then(resolve, reject);
        return;
      }
      if (status !== 200) {
        res.resume();
        return reject(new FewShotError('UNREADABLE', `${url} answered HTTP ${status}.`));
      }
      const total = res.headers['content-length'] ? Number(res.headers['content-length']) : null;
      const out = fs.createWriteStream(dest);
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        onProgress(received, total);
      });
      res.pipe(out);
      const fail = (e: Error) => {
        out.destroy();
        reject(new FewShotError('UNREADABLE', `The download from ${url} broke off: ${e.message}`));
      };
      res.on('error', fail);
      res.on('aborted', () => fail(new Error('the connection closed early')));
      out.on('finish', () => {
        if (total !== null && received !== total)
          reject(
            new FewShotError(
              'UNREADABLE',
              `The download from ${url} is truncated: ${received} of ${total} bytes arrived.`,
            ),
          );
        else resolve();
      });
      out.on('error', (e) => reject(e));
    });
    req.on('error', (e) => reject(new FewShotError('UNREADABLE', `Cannot fetch ${url}: ${e.message}`)));
  });
}

export interface BundleOptions {
  /** A checkpoint on this machine. */
  pth?: string;
  /** Or a URL to fetch it from (torchvision's official one by default). */
  url?: string;
  /** The app's resources/models folder. */
  resources?: string;
  id?: string;
  log?: (line: string) => void;
}

/** Converts torchvision's ResNet18 checkpoint into the app's bundled models; nothing is left on failure. */
export async function bundleBackbone(options: BundleOptions): Promise<BackboneEntry> {
  const log = options.log ?? (() => {});
  const resources = options.resources ?? builtinModelsDir();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fsl-bundle-'));
  try {
    let file = options.pth;
    if (!file) {
      const url = options.url ?? TORCHVISION_RESNET18_URL;
      const name = path.basename(new URL(url).pathname);
      if (!hubHashPrefix(name))
        throw new FewShotError(
          'INVALID_INPUT',
          `${name} carries no hash in its name; fetch a torch.hub file.`,
        );
      file = path.join(work, name);
      log(`Fetching ${url}`);
      let shown = 0;
      await download(url, file, (got, total) => {
        if (got - shown >= 8 << 20 || got === total) {
          shown = got;
          log(`  ${(got / 2 ** 20).toFixed(0)}${total ? ` of ${(total / 2 ** 20).toFixed(0)}` : ''} MiB`);
        }
      });
    }
    const stem = path.basename(file, path.extname(file));
    const id = options.id ?? TORCHVISION_FILES[stem]?.id ?? 'resnet18-imagenet';
    // Built in a scratch folder first, so that a refused file leaves the resources as they were.
    const staging = path.join(work, 'models');
    const entry = await addOnnxBackbone(file, {
      dir: staging,
      id,
      onProgress: (step) => log(`  ${step}`),
    });
    // The tracked manifest's entry for this id keeps its licence and install notes.
    const tracked = readManifest(resources, 'builtin').find((e) => e.id === id);
    const merged: BackboneEntry = {
      ...entry,
      ...(tracked?.license ? { license: tracked.license } : {}),
      input: { ...entry.input, ...(tracked?.input.note ? { note: tracked.input.note } : {}) },
    };
    const dest = bundledModelsDir(resources);
    fs.mkdirSync(path.join(dest, id), { recursive: true });
    fs.copyFileSync(path.join(staging, entry.file), path.join(dest, entry.file));
    upsertManifestEntry(dest, merged);
    log(`Bundled ${id} (${entry.architecture}, ${entry.output.dim} features) in ${dest}`);
    return merged;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
