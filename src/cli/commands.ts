// Every `fewshot` command by name ("project create", "train", …).

import { EMBED_COMMANDS } from './commands/embed.ts';
import { PROJECT_COMMANDS } from './commands/project.ts';
import { RESULT_COMMANDS } from './commands/results.ts';
import { SERVE_COMMANDS } from './commands/serve.ts';
import { TRAIN_COMMANDS } from './commands/train.ts';
import type { Command } from './context.ts';

export const COMMANDS: Record<string, Command> = {
  ...PROJECT_COMMANDS,
  ...TRAIN_COMMANDS,
  ...RESULT_COMMANDS,
  ...SERVE_COMMANDS,
  ...EMBED_COMMANDS,
};
