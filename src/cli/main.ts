// The `fewshot` command: the app's use cases from a terminal. `--json` prints machine-readable results
// on stdout; errors print one line on stderr and exit non-zero.

import { parseArgs } from 'node:util';
import { FewShotError, toErrorData } from '../shared/errors.ts';
import { nameThisProgram } from '../main/services/projects.ts';
import { COMMANDS } from './commands.ts';
import type { CliContext } from './context.ts';

const USAGE = `usage: fewshot <command> [options]

  project create FILE                 create a project file (e.g. lab.fsl)
  project settings FILE [--high-bit-depth full|percentile]
                                      16-bit PNG/TIFF: full range, or each image's 0.5–99.5 % range
  backup FILE --out PATH              an online copy of a project (safe while it is in use)
  import FILE FOLDER [--groups CSV] [--frames first|each]
                                      import a folder with one subfolder per class; --frames each:
                                      every page of a multi-page TIFF / frame of a DICOM as an image
  models list                         backbones: installed and missing
  models add PATH [--id ID] [--preset imagenet|caffe-bgr|tf-inception] [--architecture resnet18|…]
                                      PATH: an .onnx file, a PyTorch state dict (.pth: torchvision
                                      ResNet18/34/50/101/152, e.g. resnet18-f37072fd.pth) or a TF.js model.json
  features FILE --backbone ID [--device auto|cpu|gpu]
                                      compute (or read cached) features
  embed PROJECT|FOLDER --backbone ID --out FILE.csv|FILE.npy [--device auto|cpu|gpu] [--include-excluded]
           [--force]                  every image's feature vector with its path, label and group
                                      (.npy: float32 N × D, rows in FILE.rows.csv)
  train FILE --backbone ID --strategy prototype|linear [--seed N] [--class-balanced] [--weight-decay X]
  train FILE --backbone ID --strategy last-stage|last-two-stages|full [--epochs N] [--lr X] [--lr-backbone X]
           [--augment hflip,rotate=15,crop=0.6,...|none] [--seed N] [--device cpu|gpu|auto] [--adapt-bn]
  augment-preview FILE IMAGE --n 8 --out DIR [--augment SPEC] [--seed N]
  evaluate FILE --backbone ID --strategy S [--shots K --episodes E [--ways W] [--queries Q] | --folds K
           | --loo | --holdout FRACTION] [--seed N] [--no-groups] [--tta none|flip|flip+crops]
  curve FILE --backbone ID --strategy S [--episodes E] [--seed N]
  trained FILE                        trained models in the project
  classify FILE --model ID FOLDER --out CSV [--sort-into DIR [--link]] [--min-confidence P] [--device auto|cpu|gpu]
           [--tta none|flip|flip+crops]   average each file's probabilities over its views
  export FILE --model ID --out DIR    model.onnx (backbone + head), preprocessing, labels, model card
  import-model FILE DIR               a bundle made by export, back into a project
  delete-model FILE --model ID        a trained model with its batch runs and stored evaluations
                                      (CSV files, sorted folders and reports it wrote are kept)
  report FILE --model ID --out PDF    the evaluation report; --batch RUN_ID for a batch report
  serve FILE --model ID [--port N] [--host ADDR] [--token-file PATH] [--device auto|cpu|gpu] [--tta KIND]
                                      a local HTTP prediction service (127.0.0.1:8765, bearer token)

Every command takes --json.`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        groups: { type: 'string' },
        'group-column': { type: 'string' },
        'max-pixels': { type: 'string' },
        frames: { type: 'string' },
        'high-bit-depth': { type: 'string' },
        backbone: { type: 'string' },
        batch: { type: 'string' },
        'batch-size': { type: 'string' },
        threads: { type: 'string' },
        id: { type: 'string' },
        preset: { type: 'string' },
        name: { type: 'string' },
        strategy: { type: 'string' },
        seed: { type: 'string' },
        shots: { type: 'string' },
        episodes: { type: 'string' },
        ways: { type: 'string' },
        queries: { type: 'string' },
        folds: { type: 'string' },
        loo: { type: 'boolean' },
        holdout: { type: 'string' },
        'no-groups': { type: 'boolean' },
        'class-balanced': { type: 'boolean' },
        'weight-decay': { type: 'string' },
        model: { type: 'string' },
        out: { type: 'string' },
        'sort-into': { type: 'string' },
        link: { type: 'boolean' },
        'min-confidence': { type: 'string' },
        epochs: { type: 'string' },
        lr: { type: 'string' },
        'lr-backbone': { type: 'string' },
        augment: { type: 'string' },
        device: { type: 'string' },
        'adapt-bn': { type: 'boolean' },
        architecture: { type: 'string' },
        tta: { type: 'string' },
        'include-excluded': { type: 'boolean' },
        force: { type: 'boolean' },
        port: { type: 'string' },
        host: { type: 'string' },
        'token-file': { type: 'string' },
        n: { type: 'string' },
      },
    });
  } catch (e) {
    process.stderr.write(`fewshot: INVALID_INPUT: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${USAGE}\n`);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  // Output piped into a reader that stops early (`| head`): the rest is dropped and the work still finishes
  // and is saved, as with any Unix tool, instead of a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  // Ctrl+C cancels the work at its next step (the job is recorded as cancelled); a second one quits.
  const controller = new AbortController();
  const onInterrupt = (): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nCancelling… (Ctrl+C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onInterrupt);
  const ctx: CliContext = {
    json: values.json ?? false,
    options: values,
    log: (line) => {
      if (!values.json) process.stdout.write(`${line}\n`);
    },
    run: {
      signal: controller.signal,
      progress: (p) => {
        if (!process.stderr.isTTY) return;
        const loss = p.metrics?.loss !== undefined ? ` loss ${p.metrics.loss.toFixed(4)}` : '';
        process.stderr.write(
          `\r${p.phase}: ${p.done}/${p.total}${p.message ? ` ${p.message}` : ''}${loss}\x1b[K`,
        );
      },
    },
  };
  const [a, b] = positionals;
  const key = COMMANDS[`${a} ${b}`] ? `${a} ${b}` : (a as string);
  const command = COMMANDS[key];
  if (!command) {
    process.stderr.write(`fewshot: INVALID_INPUT: unknown command "${positionals.join(' ')}"\n${USAGE}\n`);
    return 2;
  }
  const args = positionals.slice(key.split(' ').length);
  // Another program that finds a project in use by this command is told which one.
  nameThisProgram(`\`fewshot ${key}\``);
  try {
    const result = await command(args, ctx);
    if (process.stderr.isTTY && !ctx.json) process.stderr.write('\r\x1b[K');
    if (ctx.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (e) {
    const err = toErrorData(e);
    if (process.stderr.isTTY && !ctx.json) process.stderr.write('\r\x1b[K');
    if (!(e instanceof FewShotError)) process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.stderr.write(`fewshot: ${err.code}: ${err.message}\n`);
    return err.code === 'INVALID_INPUT' ? 2 : err.code === 'CANCELLED' ? 130 : 1;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
