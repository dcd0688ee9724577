// What a command is given: its parsed options, where to print, and the use-case context (progress on a
// terminal, Ctrl+C as a cancel).

import type { UseCaseContext } from '../main/services/context.ts';

export interface CliContext {
  json: boolean;
  options: Record<string, string | boolean | undefined>;
  log(line: string): void;
  /** The use-case context: progress lines on stderr when it is a terminal, Ctrl+C cancels. */
  run: UseCaseContext;
}

export type Command = (args: string[], ctx: CliContext) => Promise<unknown>;
