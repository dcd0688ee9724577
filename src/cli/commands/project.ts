// `fewshot project | backup | import | models | features`.

import path from 'node:path';
import { FewShotError } from '../../shared/errors.ts';
import { HIGH_BIT_DEPTH_POLICIES, type HighBitDepth } from '../../shared/domain.ts';
import { addBackbone, installedBackbones, userModelsDir } from '../../main/services/backbones.ts';
import { computeProjectFeatures, importImages } from '../../main/services/dataset.ts';
import { backupProject, createProject, updateSettings, withProject } from '../../main/services/projects.ts';
import type { Command } from '../context.ts';
import {
  defined,
  deviceOption,
  need,
  optionalInt,
  request,
  requiredOption,
  REQUESTS,
  stringOption,
} from '../options.ts';

const projectCreate: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'project create FILE') as [string];
  const p = createProject(file, stringOption(ctx, 'name'));
  p.close();
  ctx.log(`Created project ${p.file}`);
  return { file: p.file };
};

const projectSettings: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'project settings FILE [--high-bit-depth full|percentile]') as [string];
  const policy = stringOption(ctx, 'high-bit-depth');
  if (policy !== undefined && !(HIGH_BIT_DEPTH_POLICIES as readonly string[]).includes(policy))
    throw new FewShotError('INVALID_INPUT', '--high-bit-depth is "full" or "percentile".');
  return withProject(file, async (p) => {
    const info = updateSettings(p, policy ? { highBitDepth: policy as HighBitDepth } : {});
    ctx.log(`16-bit images: ${info.highBitDepth}`);
    return { file: path.resolve(file), highBitDepth: info.highBitDepth };
  });
};

const backup: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'backup FILE --out PATH') as [string];
  const out = requiredOption(ctx, 'out');
  // An online copy only reads: it works while the app or another command has the project open.
  return withProject(
    file,
    async (p) => {
      const r = await backupProject(p, out);
      ctx.log(`Backed up ${file} to ${out}`);
      return r;
    },
    { readonly: true },
  );
};

const importCmd: Command = async (args, ctx) => {
  const [file, folder] = need(args, 2, 'import FILE FOLDER [--groups CSV] [--frames first|each]') as [
    string,
    string,
  ];
  const frames = stringOption(ctx, 'frames') ?? 'first';
  if (frames !== 'first' && frames !== 'each')
    throw new FewShotError('INVALID_INPUT', '--frames is "first" or "each".');
  const req = request(
    REQUESTS.import,
    defined({
      folder,
      groupsCsv: stringOption(ctx, 'groups'),
      groupColumn: stringOption(ctx, 'group-column'),
      frames,
      maxPixels: optionalInt(ctx, 'max-pixels'),
    }),
  );
  return withProject(file, async (p) => {
    const summary = await importImages(p, req, ctx.run);
    ctx.log(
      `Imported ${summary.added} new images from ${summary.root} (${summary.alreadyPresent} already present, ${summary.duplicates} duplicates).`,
    );
    for (const [cls, n] of Object.entries(summary.perClass)) ctx.log(`  ${cls}: ${n}`);
    if (summary.groupsAssigned) ctx.log(`Groups assigned: ${summary.groupsAssigned}`);
    if (summary.multiPage)
      ctx.log(
        frames === 'each'
          ? `${summary.multiPage} multi-page files: every page imported as its own image (pages of one file share a group).`
          : `${summary.multiPage} multi-page files: only the first page of each was imported (--frames each imports every page).`,
      );
    if (summary.dim16Bit && p.highBitDepth() === 'full')
      ctx.log(
        `${summary.dim16Bit} 16-bit images hold 10- to 14-bit data and look nearly black by the full range; ` +
          `\`fewshot project settings ${file} --high-bit-depth percentile\` stretches each image's 0.5–99.5 % range.`,
      );
    if (summary.rejected.length) {
      ctx.log(`Rejected ${summary.rejected.length} files:`);
      for (const r of summary.rejected) ctx.log(`  ${r.path}: ${r.code}: ${r.message}`);
    }
    return summary;
  });
};

const modelsList: Command = async (args, ctx) => {
  need(args, 0, 'models list');
  const r = installedBackbones();
  for (const m of r.models) {
    const state = !m.supported ? 'unsupported format' : m.present ? 'installed' : 'missing';
    ctx.log(
      `${m.id.padEnd(28)} ${m.architecture.padEnd(18)} ${m.format.padEnd(12)} dim ${String(m.featureDim).padEnd(5)} ${m.source.padEnd(8)} ${state}`,
    );
    if (!m.present && m.install) ctx.log(`    to install: ${m.install}`);
  }
  for (const pr of r.problems) ctx.log(`warning: ${pr.dir}: ${pr.message}`);
  return r;
};

const modelsAdd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'models add PATH [--id ID] [--preset NAME] [--architecture NAME]') as [string];
  const entry = await addBackbone(
    path.resolve(file),
    defined({
      id: stringOption(ctx, 'id'),
      preset: stringOption(ctx, 'preset'),
      architecture: stringOption(ctx, 'architecture'),
    }),
  );
  ctx.log(
    `Added backbone ${entry.id} (${entry.architecture}, ${entry.output.dim} features) to ${userModelsDir()}`,
  );
  if (entry.origin) ctx.log(`  from ${entry.origin.file}, sha256 ${entry.origin.sha256}`);
  return entry;
};

const features: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'features FILE --backbone ID') as [string];
  const req = request(
    REQUESTS.features,
    defined({
      backbone: requiredOption(ctx, 'backbone', 'see fewshot models list'),
      batchSize: optionalInt(ctx, 'batch-size'),
      threads: optionalInt(ctx, 'threads'),
      device: deviceOption(ctx),
    }),
  );
  return withProject(file, async (p) => {
    const r = await computeProjectFeatures(p, req, ctx.run);
    ctx.log(
      `${r.computed} computed, ${r.fromCache} from cache, ${r.failed} failed; ${r.imagesPerSecond.toFixed(1)} images/s`,
    );
    for (const e of r.errors) ctx.log(`  image ${e.imageId}: ${e.error.code}: ${e.error.message}`);
    return r;
  });
};

export const PROJECT_COMMANDS: Record<string, Command> = {
  'project create': projectCreate,
  'project settings': projectSettings,
  backup,
  import: importCmd,
  'models list': modelsList,
  'models add': modelsAdd,
  features,
};
