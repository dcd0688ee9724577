// The backbone registry: the app's own manifest, extra folders named in FEWSHOT_MODELS, and the user's
// models folder, each a directory with a manifest.json. Nothing is ever downloaded.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BackboneEntrySchema,
  ManifestSchema,
  type BackboneEntry,
  type BackboneInfo,
  type BackboneSource,
} from '../../../shared/backbones.ts';
import { FewShotError } from '../../../shared/errors.ts';

export interface ResolvedBackbone extends BackboneEntry {
  source: BackboneSource;
  /** Absolute path of the model file. */
  path: string;
  dir: string;
}

const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export function builtinModelsDir(): string {
  return process.env.FEWSHOT_RESOURCES
    ? path.join(process.env.FEWSHOT_RESOURCES, 'models')
    : path.join(REPO_ROOT, 'resources', 'models');
}

/** Where `fewshot models add` installs models: FEWSHOT_USER_MODELS, else the platform's data folder. */
export function userModelsDir(): string {
  if (process.env.FEWSHOT_USER_MODELS) return path.resolve(process.env.FEWSHOT_USER_MODELS);
  const home = os.homedir();
  if (process.platform === 'win32')
    return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'FewShot Lab', 'models');
  if (process.platform === 'darwin')
    return path.join(home, 'Library', 'Application Support', 'FewShot Lab', 'models');
  return path.join(process.env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'fewshot-lab', 'models');
}

export function modelDirs(): { dir: string; source: BackboneSource }[] {
  const extra = (process.env.FEWSHOT_MODELS ?? '')
    .split(path.delimiter)
    .filter((d) => d.trim() !== '')
    .map((d) => ({ dir: path.resolve(d), source: 'extra' as const }));
  // Backbones converted into the installer by `npm run models:bundle` sit in models/bundled.
  return [
    { dir: path.join(builtinModelsDir(), 'bundled'), source: 'builtin' },
    { dir: builtinModelsDir(), source: 'builtin' },
    ...extra,
    { dir: userModelsDir(), source: 'user' },
  ];
}

export interface ManifestProblem {
  dir: string;
  message: string;
}

export function readManifest(
  dir: string,
  source: BackboneSource,
  problems: ManifestProblem[] = [],
): ResolvedBackbone[] {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    problems.push({ dir, message: `manifest.json is not valid JSON: ${(e as Error).message}` });
    return [];
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    problems.push({ dir, message: `manifest.json: ${parsed.error.issues[0]?.message ?? 'invalid'}` });
    return [];
  }
  const out: ResolvedBackbone[] = [];
  for (const m of parsed.data.models) {
    const e = BackboneEntrySchema.safeParse(m);
    if (!e.success) {
      const id = typeof m === 'object' && m !== null && 'id' in m ? String(m.id) : '?';
      problems.push({
        dir,
        message: `model ${id}: ${e.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      });
      continue;
    }
    const entryPath = path.resolve(dir, e.data.file);
    if (!entryPath.startsWith(path.resolve(dir) + path.sep)) {
      problems.push({ dir, message: `model ${e.data.id}: file must stay inside its folder` });
      continue;
    }
    out.push({ ...e.data, source, path: entryPath, dir });
  }
  return out;
}

/** Every known backbone; for an id listed twice, the first whose file is present wins. */
export function listResolved(problems: ManifestProblem[] = []): ResolvedBackbone[] {
  const byId = new Map<string, ResolvedBackbone>();
  for (const { dir, source } of modelDirs()) {
    for (const entry of readManifest(dir, source, problems)) {
      const prev = byId.get(entry.id);
      if (!prev || (!fs.existsSync(prev.path) && fs.existsSync(entry.path))) byId.set(entry.id, entry);
    }
  }
  return [...byId.values()];
}

export function isSupportedFormat(format: BackboneEntry['format']): boolean {
  return format === 'onnx' || format === 'tfjs-layers';
}

/**
 * A TF.js layers backbone is converted to ONNX when loaded (NCHW, input "input", output "features");
 * its entry is described as the converted graph, so every consumer sees one kind of backbone.
 */
function asConverted(entry: ResolvedBackbone): ResolvedBackbone {
  if (entry.format !== 'tfjs-layers') return entry;
  return {
    ...entry,
    input: { ...entry.input, name: 'input', layout: 'NCHW' },
    output: { ...entry.output, name: 'features' },
  };
}

export function listBackbones(problems: ManifestProblem[] = []): BackboneInfo[] {
  return listResolved(problems).map((e) => ({
    id: e.id,
    architecture: e.architecture,
    format: e.format,
    featureDim: e.output.dim,
    source: e.source,
    present: fs.existsSync(e.path),
    supported: isSupportedFormat(e.format),
    ...(e.install ? { install: e.install } : {}),
    ...(e.pretraining ? { pretraining: e.pretraining } : {}),
  }));
}

export function resolveBackbone(id: string): ResolvedBackbone {
  const entry = listResolved().find((e) => e.id === id);
  if (!entry) {
    const known = listResolved().map((e) => e.id);
    throw new FewShotError('NOT_FOUND', `No backbone "${id}". Known: ${known.join(', ') || 'none'}.`);
  }
  if (!fs.existsSync(entry.path)) {
    throw new FewShotError(
      'MODEL_MISSING',
      `Backbone "${id}" is not installed (expected ${entry.path}).${entry.install ? ` ${entry.install}` : ''}`,
    );
  }
  if (entry.format === 'tfjs-layers' && entry.sha256 && entry.sha256Of) {
    const weights = path.join(path.dirname(entry.path), entry.sha256Of);
    if (!fs.existsSync(weights))
      throw new FewShotError('MODEL_MISSING', `Backbone "${id}" lacks ${entry.sha256Of}.`);
  }
  if (!isSupportedFormat(entry.format)) {
    throw new FewShotError(
      'MODEL_INVALID',
      `Backbone "${id}" is a ${entry.format} model; this build runs ONNX backbones only.`,
    );
  }
  return asConverted(entry);
}
