// Stored evaluations, so Review and the report reuse one cross-validation until the data or the model
// changes; one name for batch jobs ('batch', as on the wire); indexes for the lists the window pages.

import type { Migration } from './types.ts';

export const migration0003: Migration = {
  version: 3,
  name: 'evaluations',
  up(db) {
    db.exec(`
      CREATE TABLE evaluations (
        id TEXT PRIMARY KEY,
        model_id TEXT NOT NULL REFERENCES models(id),
        -- sha256 over (protocol, seed, groups kept whole, data fingerprint): the reuse key.
        key TEXT NOT NULL,
        protocol TEXT NOT NULL,
        seed INTEGER NOT NULL,
        group_aware INTEGER NOT NULL CHECK (group_aware IN (0, 1)),
        data_fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        job_id TEXT REFERENCES jobs(id),
        created_at TEXT NOT NULL,
        UNIQUE (model_id, key)
      ) STRICT;
      UPDATE jobs SET kind = 'batch' WHERE kind = 'classify';
      CREATE INDEX jobs_created ON jobs(created_at);
      CREATE INDEX predictions_status ON predictions(run_id, status, predicted);
    `);
  },
};
