// Option parsing: from `--flags` to the use cases' request objects (the same schemas the app's
// channels parse), so the command line and the app cannot drift apart.

import { isTtaKind, TTA_KINDS, type TtaKind } from '../shared/tta.ts';
import type { z } from 'zod';
import { parseAugment } from '../shared/augment.ts';
import { FewShotError } from '../shared/errors.ts';
import { DEVICES, ProtocolSchema, REQUESTS, type FinetuneSettings } from '../shared/requests.ts';
import type { Protocol } from '../shared/results.ts';
import type { CliContext } from './context.ts';

export function need(args: string[], n: number, usage: string): string[] {
  if (args.length !== n) throw new FewShotError('INVALID_INPUT', `usage: fewshot ${usage}`);
  return args;
}

export function intOption(ctx: CliContext, name: string, fallback: number, allowZero = false): number {
  const v = ctx.options[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !allowZero))
    throw new FewShotError(
      'INVALID_INPUT',
      `--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer.`,
    );
  return n;
}

export function optionalInt(ctx: CliContext, name: string): number | undefined {
  return ctx.options[name] === undefined ? undefined : intOption(ctx, name, 1);
}

export function numberOption(ctx: CliContext, name: string, fallback: number): number {
  const v = ctx.options[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new FewShotError('INVALID_INPUT', `--${name} must be a number.`);
  return n;
}

export function optionalNumber(ctx: CliContext, name: string): number | undefined {
  return ctx.options[name] === undefined ? undefined : numberOption(ctx, name, 0);
}

export function stringOption(ctx: CliContext, name: string): string | undefined {
  const v = ctx.options[name];
  return typeof v === 'string' ? v : undefined;
}

export function requiredOption(ctx: CliContext, name: string, hint = ''): string {
  const v = stringOption(ctx, name);
  if (!v) throw new FewShotError('INVALID_INPUT', `--${name} is required${hint ? ` (${hint})` : ''}.`);
  return v;
}

/** Drops undefined values, so an absent flag stays absent in the request. */
export function defined<T extends Record<string, unknown>>(
  o: T,
): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as never;
}

/** Parses with a use case's schema; its complaint becomes the command's INVALID_INPUT. */
export function request<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new FewShotError(
      'INVALID_INPUT',
      issue ? `${issue.path.length ? `--${issue.path.join('.')}: ` : ''}${issue.message}` : 'invalid options',
    );
  }
  return r.data;
}

export function augmentOption(ctx: CliContext) {
  try {
    return parseAugment(stringOption(ctx, 'augment'));
  } catch (e) {
    throw new FewShotError('INVALID_INPUT', (e as Error).message);
  }
}

/** --device auto|cpu|gpu. */
export function deviceOption(ctx: CliContext): FinetuneSettings['device'] {
  const device = stringOption(ctx, 'device');
  if (device && !(DEVICES as readonly string[]).includes(device))
    throw new FewShotError('INVALID_INPUT', `--device is ${DEVICES.join(', ')}.`);
  return device as FinetuneSettings['device'];
}

/** --tta none|flip|flip+crops: test-time augmentation. */
export function ttaOption(ctx: CliContext): TtaKind | undefined {
  const tta = stringOption(ctx, 'tta');
  if (tta !== undefined && !isTtaKind(tta))
    throw new FewShotError('INVALID_INPUT', `--tta is ${TTA_KINDS.join(', ')}.`);
  return tta;
}

/** --epochs, --lr, --lr-backbone, --augment, --device, --adapt-bn. */
export function finetuneSettings(ctx: CliContext): FinetuneSettings {
  const device = deviceOption(ctx);
  return defined({
    epochs: intOption(ctx, 'epochs', 10),
    lr: numberOption(ctx, 'lr', 1e-3),
    lrBackbone: optionalNumber(ctx, 'lr-backbone'),
    augment: augmentOption(ctx),
    device,
    adaptBatchNorm: ctx.options['adapt-bn'] ? true : undefined,
  });
}

const PROTOCOL_FLAGS = ['shots', 'folds', 'loo', 'holdout'];

export function hasProtocolOption(ctx: CliContext): boolean {
  return PROTOCOL_FLAGS.some((k) => ctx.options[k] !== undefined);
}

export function protocolOption(ctx: CliContext): Protocol {
  const chosen = PROTOCOL_FLAGS.filter((k) => ctx.options[k] !== undefined);
  if (chosen.length > 1)
    throw new FewShotError('INVALID_INPUT', 'Choose one of --shots, --folds, --loo, --holdout.');
  if (ctx.options.loo) return { kind: 'loo' };
  if (ctx.options.folds !== undefined)
    return request(ProtocolSchema, { kind: 'kfold', folds: intOption(ctx, 'folds', 5) });
  if (ctx.options.holdout !== undefined) {
    const f = numberOption(ctx, 'holdout', 0.2);
    if (!(f > 0 && f < 1))
      throw new FewShotError('INVALID_INPUT', '--holdout is the test fraction, between 0 and 1.');
    return { kind: 'holdout', testFraction: f };
  }
  return request(
    ProtocolSchema,
    defined({
      kind: 'episodes',
      shots: intOption(ctx, 'shots', 5),
      episodes: intOption(ctx, 'episodes', 100),
      ways: optionalInt(ctx, 'ways'),
      queries: optionalInt(ctx, 'queries'),
    }),
  );
}

export { REQUESTS };
