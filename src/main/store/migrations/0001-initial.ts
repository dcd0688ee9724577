// The first schema: classes, images (with their bytes), the feature cache, jobs, models, predictions and
// the append-only audit log.

import type { Migration } from './types.ts';

export const migration0001: Migration = {
  version: 1,
  name: 'initial',
  up(db) {
    db.exec(`
      CREATE TABLE project_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE classes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      ) STRICT;

      -- Every folder the project imported from. The absolute path is needed to re-read a folder; it is
      -- never shown in reports (paths there are relative to the root).
      CREATE TABLE import_roots (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at TEXT NOT NULL
      ) STRICT;

      -- Original bytes, content-addressed: the project file alone is enough to retrain or re-extract.
      CREATE TABLE image_blobs (
        sha256 TEXT PRIMARY KEY,
        bytes BLOB NOT NULL
      ) STRICT;

      CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE REFERENCES image_blobs(sha256),
        root_id INTEGER NOT NULL REFERENCES import_roots(id),
        rel_path TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        class_id INTEGER REFERENCES classes(id),
        group_key TEXT,
        excluded INTEGER NOT NULL DEFAULT 0 CHECK (excluded IN (0, 1)),
        added_at TEXT NOT NULL,
        UNIQUE (root_id, rel_path)
      ) STRICT;
      CREATE INDEX images_class ON images(class_id);
      CREATE INDEX images_group ON images(group_key);

      CREATE TABLE import_rejections (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id),
        root_id INTEGER NOT NULL REFERENCES import_roots(id),
        rel_path TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL
      ) STRICT;
      CREATE INDEX import_rejections_job ON import_rejections(job_id);

      -- view: 'eval' for the backbone's evaluation transform, other names for augmented views.
      CREATE TABLE feature_cache (
        sha256 TEXT NOT NULL,
        backbone_id TEXT NOT NULL,
        view TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (sha256, backbone_id, view)
      ) STRICT, WITHOUT ROWID;

      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        params TEXT NOT NULL,
        progress TEXT,
        result TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE models (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        backbone_id TEXT NOT NULL,
        backbone_sha256 TEXT NOT NULL,
        strategy TEXT NOT NULL,
        params TEXT NOT NULL,
        seed INTEGER NOT NULL,
        classes TEXT NOT NULL,
        training_set TEXT NOT NULL,
        metrics TEXT,
        software TEXT NOT NULL,
        artefact BLOB,
        artefact_sha256 TEXT,
        job_id TEXT REFERENCES jobs(id),
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE batch_runs (
        id TEXT PRIMARY KEY,
        model_id TEXT NOT NULL REFERENCES models(id),
        root TEXT NOT NULL,
        params TEXT NOT NULL,
        job_id TEXT REFERENCES jobs(id),
        created_at TEXT NOT NULL
      ) STRICT;

      CREATE TABLE predictions (
        run_id TEXT NOT NULL REFERENCES batch_runs(id),
        rel_path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'uncertain', 'error')),
        predicted TEXT,
        confidence REAL,
        probabilities TEXT,
        error_code TEXT,
        error_message TEXT,
        PRIMARY KEY (run_id, rel_path)
      ) STRICT;

      -- Append-only, hash-chained: each row's hash covers the previous row's hash.
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      ) STRICT;
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    `);
  },
};
