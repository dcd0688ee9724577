// Every `fewshot` command by name ("project create", "train", …).

import { PROJECT_COMMANDS } from './commands/project.ts';
import { RESULT_COMMANDS } from './commands/results.ts';
import { TRAIN_COMMANDS } from './commands/train.ts';
import type { Command } from './context.ts';

export const COMMANDS: Record<string, Command> = {
  ...PROJECT_COMMANDS,
  ...TRAIN_COMMANDS,
  ...RESULT_COMMANDS,
};
