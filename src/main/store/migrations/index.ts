// The ordered, append-only list of migrations. Never edit one that has shipped: add the next number.

import { migration0001 } from './0001-initial.ts';
import type { Migration } from './types.ts';

export const MIGRATIONS: readonly Migration[] = [migration0001];
export type { Migration };
