// Training checkpoints: the state of a fine-tuning run after each epoch, so a killed run resumes.

import type { Migration } from './types.ts';

export const migration0002: Migration = {
  version: 2,
  name: 'checkpoints',
  up(db) {
    db.exec(`
      CREATE TABLE checkpoints (
        key TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        state BLOB NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
    `);
  },
};
