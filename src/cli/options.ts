// Option parsing helpers shared by the command modules.

import { FewShotError } from '../shared/errors.ts';
import { Project } from '../main/store/project.ts';
import type { CliContext } from './commands.ts';

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

export function numberOption(ctx: CliContext, name: string, fallback: number): number {
  const v = ctx.options[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new FewShotError('INVALID_INPUT', `--${name} must be a number.`);
  return n;
}

export function stringOption(ctx: CliContext, name: string): string | undefined {
  const v = ctx.options[name];
  return typeof v === 'string' ? v : undefined;
}

export async function withProject<T>(file: string, fn: (p: Project) => Promise<T>): Promise<T> {
  const p = Project.open(file);
  try {
    return await fn(p);
  } finally {
    p.close();
  }
}
