// A migration is code: a version number, a name and a function run inside one transaction.

import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  up(db: Database.Database): void;
}
