// The ordered, append-only list of migrations. Never edit one that has shipped: add the next number.

import { migration0001 } from './0001-initial.ts';
import { migration0002 } from './0002-checkpoints.ts';
import { migration0003 } from './0003-evaluations.ts';
import type { Migration } from './types.ts';

export const MIGRATIONS: readonly Migration[] = [migration0001, migration0002, migration0003];
export type { Migration };
