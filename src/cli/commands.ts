// One function per `fewshot` command; each returns the JSON it prints with --json.

import path from 'node:path';
import { FewShotError } from '../shared/errors.ts';
import { HIGH_BIT_DEPTH_POLICIES, type HighBitDepth } from '../shared/domain.ts';
import { Backbone } from '../main/engine/backbones/backbone.ts';
import { addOnnxBackbone } from '../main/engine/backbones/install.ts';
import { listBackbones, resolveBackbone, userModelsDir } from '../main/engine/backbones/registry.ts';
import { computeFeatures } from '../main/engine/features/project-features.ts';
import { DEFAULT_LIMITS } from '../main/engine/image/decode.ts';
import { importFolder } from '../main/engine/import/import-folder.ts';
import { Project } from '../main/store/project.ts';
import { CLASSIFY_COMMANDS } from './classify-commands.ts';
import { EXPORT_COMMANDS } from './export-commands.ts';
import { intOption, need, stringOption, withProject } from './options.ts';

export interface CliContext {
  json: boolean;
  options: Record<string, string | boolean | undefined>;
  log(line: string): void;
  progress(line: string): void;
}

export type Command = (args: string[], ctx: CliContext) => Promise<unknown>;

const projectCreate: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'project create FILE') as [string];
  const p = Project.create(file, stringOption(ctx, 'name'));
  p.close();
  ctx.log(`Created project ${file}`);
  return { file: path.resolve(file) };
};

const importCmd: Command = async (args, ctx) => {
  const [file, folder] = need(args, 2, 'import FILE FOLDER [--groups CSV] [--frames first|each]') as [
    string,
    string,
  ];
  const frames = stringOption(ctx, 'frames') ?? 'first';
  if (frames !== 'first' && frames !== 'each')
    throw new FewShotError('INVALID_INPUT', '--frames is "first" or "each".');
  return withProject(file, async (p) => {
    const groups = stringOption(ctx, 'groups');
    const groupColumn = stringOption(ctx, 'group-column');
    const summary = await importFolder(p, folder, {
      ...(groups ? { groupsCsv: groups } : {}),
      ...(groupColumn ? { groupColumn } : {}),
      frames,
      limits: { ...DEFAULT_LIMITS, maxPixels: intOption(ctx, 'max-pixels', DEFAULT_LIMITS.maxPixels) },
      onProgress: (pr) => {
        if (pr.phase === 'importing')
          ctx.progress(
            `importing: ${pr.processed}/${pr.filesSeen} files, ${pr.added} added, ${pr.rejected} rejected`,
          );
      },
    });
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

const backup: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'backup FILE --out PATH') as [string];
  const out = stringOption(ctx, 'out');
  if (!out) throw new FewShotError('INVALID_INPUT', '--out is required.');
  return withProject(file, async (p) => {
    await p.backup(out);
    ctx.log(`Backed up ${file} to ${out}`);
    return { file: path.resolve(out) };
  });
};

const modelsList: Command = async (args, ctx) => {
  need(args, 0, 'models list');
  const problems: { dir: string; message: string }[] = [];
  const models = listBackbones(problems);
  for (const m of models) {
    const state = !m.supported ? 'unsupported format' : m.present ? 'installed' : 'missing';
    ctx.log(
      `${m.id.padEnd(28)} ${m.architecture.padEnd(18)} ${m.format.padEnd(12)} dim ${String(m.featureDim).padEnd(5)} ${m.source.padEnd(8)} ${state}`,
    );
    if (!m.present && m.install) ctx.log(`    to install: ${m.install}`);
  }
  for (const pr of problems) ctx.log(`warning: ${pr.dir}: ${pr.message}`);
  return { models, problems };
};

const modelsAdd: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'models add PATH [--id ID] [--preset NAME]') as [string];
  const id = stringOption(ctx, 'id');
  const preset = stringOption(ctx, 'preset');
  const entry = await addOnnxBackbone(file, {
    dir: userModelsDir(),
    ...(id ? { id } : {}),
    ...(preset ? { preset } : {}),
  });
  ctx.log(
    `Added backbone ${entry.id} (${entry.architecture}, ${entry.output.dim} features) to ${userModelsDir()}`,
  );
  return entry;
};

const features: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'features FILE --backbone ID') as [string];
  const id = stringOption(ctx, 'backbone');
  if (!id) throw new FewShotError('INVALID_INPUT', '--backbone is required (see fewshot models list).');
  return withProject(file, async (p) => {
    const backbone = await Backbone.load(resolveBackbone(id), {
      threads: intOption(ctx, 'threads', 0) || undefined,
    });
    try {
      const r = await computeFeatures(p, backbone, {
        batchSize: intOption(ctx, 'batch-size', 16),
        onProgress: (pr) => ctx.progress(`features: ${pr.done}/${pr.total}`),
      });
      ctx.log(
        `${r.computed} computed, ${r.fromCache} from cache, ${r.failed} failed; ${r.imagesPerSecond.toFixed(1)} images/s`,
      );
      for (const e of r.errors) ctx.log(`  image ${e.imageId}: ${e.error.code}: ${e.error.message}`);
      return r;
    } finally {
      await backbone.release();
    }
  });
};

const projectSettings: Command = async (args, ctx) => {
  const [file] = need(args, 1, 'project settings FILE [--high-bit-depth full|percentile]') as [string];
  return withProject(file, async (p) => {
    const policy = stringOption(ctx, 'high-bit-depth');
    if (policy !== undefined) {
      if (!(HIGH_BIT_DEPTH_POLICIES as readonly string[]).includes(policy))
        throw new FewShotError('INVALID_INPUT', '--high-bit-depth is "full" or "percentile".');
      p.setHighBitDepth(policy as HighBitDepth);
    }
    ctx.log(`16-bit images: ${p.highBitDepth()}`);
    return { file: path.resolve(file), highBitDepth: p.highBitDepth() };
  });
};

export const COMMANDS: Record<string, Command> = {
  'project create': projectCreate,
  'project settings': projectSettings,
  backup,
  import: importCmd,
  'models list': modelsList,
  'models add': modelsAdd,
  features,
  ...CLASSIFY_COMMANDS,
  ...EXPORT_COMMANDS,
};
