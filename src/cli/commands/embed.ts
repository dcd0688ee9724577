// `fewshot embed`: every image's feature vector, from a project or a folder, to a .csv or a .npy.

import path from 'node:path';
import { exportEmbeddingsFrom } from '../../main/services/embeddings.ts';
import type { Command } from '../context.ts';
import { defined, deviceOption, need, optionalInt, request, requiredOption, REQUESTS } from '../options.ts';

const USAGE =
  'embed PROJECT|FOLDER --backbone ID --out FILE.csv|FILE.npy [--device auto|cpu|gpu] [--include-excluded] [--force]';

const embed: Command = async (args, ctx) => {
  const [target] = need(args, 1, USAGE) as [string];
  const req = request(
    REQUESTS.embeddings,
    defined({
      backbone: requiredOption(ctx, 'backbone', 'see fewshot models list'),
      out: path.resolve(requiredOption(ctx, 'out', 'a .csv or .npy file')),
      includeExcluded: ctx.options['include-excluded'] === true ? true : undefined,
      force: ctx.options.force === true ? true : undefined,
      batchSize: optionalInt(ctx, 'batch-size'),
      threads: optionalInt(ctx, 'threads'),
      device: deviceOption(ctx),
    }),
  );
  const r = await exportEmbeddingsFrom(target, req, ctx.run);
  ctx.log(
    `Wrote ${r.rows} rows × ${r.dim} features (${r.backbone}, ${r.device}) to ${r.out}${r.rowsFile ? `; rows in ${r.rowsFile}` : ''}`,
  );
  // The images left out go to stderr, also under --json (whose result lists them too).
  if (r.skipped.length) {
    process.stderr.write(`Skipped ${r.skipped.length} image(s) that could not be read:\n`);
    for (const s of r.skipped) process.stderr.write(`  ${s.path}: ${s.code}: ${s.message}\n`);
  }
  return r;
};

export const EMBED_COMMANDS: Record<string, Command> = { embed };
